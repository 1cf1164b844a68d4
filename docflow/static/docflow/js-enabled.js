// Loaded first thing in <body> (no inline script: the Content-Security-Policy forbids
// it): the NHS.UK frontend styles components for JavaScript from these classes.
document.body.classList.add("js-enabled");
if ("noModule" in HTMLScriptElement.prototype) {
  document.body.classList.add("nhsuk-frontend-supported");
}
