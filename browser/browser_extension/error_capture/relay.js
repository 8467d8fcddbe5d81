// Runs in the isolated world: forwards capture.js's records to the service worker,
// and answers "which tab is this?" for the Python side (which reads records per tab).
(() => {
  "use strict";
  const EVENT = "__workspace_error_capture__";
  document.addEventListener(EVENT, (event) => {
    if (typeof event.detail !== "string") return;
    let record;
    try {
      record = JSON.parse(event.detail);
    } catch (_ignored) {
      return;
    }
    chrome.runtime.sendMessage({ kind: "record", record }).catch(() => {});
  });
  document.addEventListener(`${EVENT}:tab`, () => {
    chrome.runtime
      .sendMessage({ kind: "tab" })
      .then((reply) => {
        const tabId = reply && typeof reply.tabId === "number" ? reply.tabId : -1;
        document.dispatchEvent(new CustomEvent(`${EVENT}:tab-reply`, { detail: String(tabId) }));
      })
      .catch(() => {});
  });
})();
