// "View document" opens the document in a new tab, but only once a reason the
// server will accept is given: otherwise the form posts in this tab, which shows
// the error summary (never a second copy of the page in another tab). Without
// JavaScript everything stays in this tab.
const REASON_MAX_LENGTH = 1000; // casework.forms.REASON_MAX_LENGTH

for (const form of document.querySelectorAll("form[data-new-tab-when-reason]")) {
  form.addEventListener("submit", () => {
    const reason = form.querySelector("textarea, input[type=text]");
    const text = reason ? reason.value.trim() : "";
    form.target = text && text.length <= REASON_MAX_LENGTH ? "_blank" : "";
  });
}
