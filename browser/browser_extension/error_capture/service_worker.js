// Keeps each tab's error records in chrome.storage.session (they survive navigation
// within the tab and service-worker restarts), with serialized writes and a FIFO cap.
// Adds network failures and HTTP >= 400 answers seen by chrome.webRequest, with
// secret-bearing headers and URL parameters redacted. Python reads records through
// self.errorCapture (see browser/capture.py).
"use strict";

const PREFIX = "tab:";
const CONFIG_KEY = "config";
const DEFAULT_MAX_RECORDS = 200;
const MAX_TEXT = 4000;
const REDACTED = "[REDACTED]";
const SECRET_HEADER = /authorization|cookie|api[-_]?key|token|secret|password|session/i;
const SECRET_PARAM = /^(api[-_]?key|apikey|key|token|access[-_]?token|auth|password|secret|signature|sig)$/i;
const TYPES = new Set(["error", "unhandledrejection", "console", "network", "http"]);

const redactUrl = (raw) => {
  let url;
  try {
    url = new URL(raw);
  } catch (_ignored) {
    return String(raw || "");
  }
  let changed = false;
  if (url.username || url.password) {
    url.username = url.username ? REDACTED : "";
    url.password = url.password ? REDACTED : "";
    changed = true;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) {
      url.searchParams.set(name, REDACTED);
      changed = true;
    }
  }
  return changed ? url.toString() : raw;
};

const redactHeaders = (headers) =>
  (headers || []).map(({ name, value }) => ({
    name,
    value: SECRET_HEADER.test(name) ? REDACTED : value,
  }));

const text = (value) => String(value ?? "").slice(0, MAX_TEXT);
const position = (value) => (Number.isInteger(value) && value > 0 ? value : null);

const normalize = (record, fallbackUrl) => {
  const normalized = {
    type: TYPES.has(record.type) ? record.type : "error",
    message: text(record.message),
    url: redactUrl(text(record.url || fallbackUrl)),
    line: position(record.line),
    column: position(record.column),
    stack: text(record.stack),
    timestamp: typeof record.timestamp === "number" ? record.timestamp : Date.now(),
  };
  if (record.requestHeaders) normalized.requestHeaders = redactHeaders(record.requestHeaders);
  return normalized;
};

// One queue for every write, so concurrent appends never lose each other's records.
let queue = Promise.resolve();
const enqueue = (task) => {
  const run = queue.then(task);
  queue = run.catch((error) => console.warn("error capture: write failed", error));
  return run;
};

const maxRecords = async () => {
  const stored = await chrome.storage.session.get(CONFIG_KEY);
  const configured = stored[CONFIG_KEY] && stored[CONFIG_KEY].maxRecords;
  return Number.isInteger(configured) && configured > 0 ? configured : DEFAULT_MAX_RECORDS;
};

const append = (tabId, record) =>
  enqueue(async () => {
    const key = PREFIX + tabId;
    const [stored, cap] = await Promise.all([chrome.storage.session.get(key), maxRecords()]);
    const records = stored[key] || [];
    records.push(record);
    records.splice(0, Math.max(0, records.length - cap)); // FIFO: drop the oldest
    await chrome.storage.session.set({ [key]: records });
  });

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id || !message || !sender.tab) return false;
  if (message.kind === "tab") {
    sendResponse({ tabId: sender.tab.id });
    return false;
  }
  if (message.kind === "record" && message.record && typeof message.record === "object") {
    append(sender.tab.id, normalize(message.record, sender.url));
  }
  return false;
});

const requestHeaders = new Map();
const FILTER = { urls: ["http://*/*", "https://*/*"] };

chrome.webRequest.onSendHeaders.addListener(
  (details) => {
    if (details.tabId >= 0) requestHeaders.set(details.requestId, details.requestHeaders || []);
  },
  FILTER,
  ["requestHeaders", "extraHeaders"],
);

chrome.webRequest.onCompleted.addListener((details) => {
  const headers = requestHeaders.get(details.requestId);
  requestHeaders.delete(details.requestId);
  if (details.tabId < 0 || details.statusCode < 400) return;
  const url = redactUrl(details.url);
  append(
    details.tabId,
    normalize(
      {
        type: "http",
        message: `HTTP ${details.statusCode} (${details.method} ${url})`,
        url,
        stack: "",
        timestamp: details.timeStamp,
        requestHeaders: headers,
      },
      url,
    ),
  );
}, FILTER);

chrome.webRequest.onErrorOccurred.addListener((details) => {
  const headers = requestHeaders.get(details.requestId);
  requestHeaders.delete(details.requestId);
  // An aborted request (navigation away, cancelled fetch) is not a page error.
  if (details.tabId < 0 || details.error === "net::ERR_ABORTED") return;
  const url = redactUrl(details.url);
  append(
    details.tabId,
    normalize(
      {
        type: "network",
        message: `${details.error} (${details.method} ${url})`,
        url,
        stack: "",
        timestamp: details.timeStamp,
        requestHeaders: headers,
      },
      url,
    ),
  );
}, FILTER);

chrome.tabs.onRemoved.addListener((tabId) => {
  enqueue(() => chrome.storage.session.remove(PREFIX + tabId));
});

// The interface the Python side evaluates in this worker.
self.errorCapture = {
  async records(tabId) {
    await queue;
    const key = PREFIX + tabId;
    return (await chrome.storage.session.get(key))[key] || [];
  },
  setMaxRecords(count) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`invalid cap ${count}`);
    return enqueue(() => chrome.storage.session.set({ [CONFIG_KEY]: { maxRecords: count } }));
  },
  redactUrl,
};
