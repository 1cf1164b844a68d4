// "View document" opens the document in a new tab, but only once a reason is
// given: without one the form posts in this tab, which shows the error summary
// (never a second copy of the page in another tab). No JavaScript: same tab.
for (const form of document.querySelectorAll("form[data-new-tab-when-reason]")) {
  form.addEventListener("submit", () => {
    const reason = form.querySelector("textarea, input[type=text]");
    form.target = reason && reason.value.trim() ? "_blank" : "";
  });
}
