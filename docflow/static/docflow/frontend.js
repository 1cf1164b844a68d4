// Starts the NHS.UK frontend components (an ES module next to this one in static):
// every element with a data-module (the header, error summaries, ...) once the page
// has loaded, and again within what htmx swaps in (the queue's filters and results),
// where an error summary also puts "Error: " in front of the page title.
import { initAll } from "../vendor/nhsuk-frontend/nhsuk-frontend.min.js";

const ERROR_PREFIX = "Error: ";

initAll();

document.body.addEventListener("htmx:afterSettle", (event) => {
  const swapped = event.detail.elt;
  if (!(swapped instanceof Element)) {
    return;
  }
  initAll({ scope: swapped });
  const hasErrors = swapped.querySelector(".nhsuk-error-summary") !== null;
  const title = document.title.startsWith(ERROR_PREFIX)
    ? document.title.slice(ERROR_PREFIX.length)
    : document.title;
  document.title = hasErrors ? ERROR_PREFIX + title : title;
});
