// Starts the NHS.UK frontend components (an ES module next to this one in static).
import { initAll } from "../vendor/nhsuk-frontend/nhsuk-frontend.min.js";

initAll();
