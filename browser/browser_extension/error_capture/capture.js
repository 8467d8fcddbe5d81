// Runs in the page's MAIN world at document_start: sees the page's own errors.
// Each record is handed to relay.js (isolated world) as a JSON string on a DOM event,
// because the MAIN world has no extension APIs. Record fields:
// {type, message, url, line, column, stack, timestamp}.
(() => {
  "use strict";
  const EVENT = "__workspace_error_capture__";
  const FLAG = "__workspaceErrorCapture";
  if (Object.prototype.hasOwnProperty.call(window, FLAG)) return;
  Object.defineProperty(window, FLAG, { value: true, enumerable: false });

  const stringify = JSON.stringify;
  const dispatch = EventTarget.prototype.dispatchEvent;
  const originalConsoleError = console.error;
  let reporting = false;

  const send = (record) => {
    if (reporting) return; // never report our own failures recursively
    reporting = true;
    try {
      const event = new CustomEvent(EVENT, { detail: stringify(record) });
      dispatch.call(document, event);
    } catch (_ignored) {
      // a record that cannot be serialized is dropped rather than breaking the page
    } finally {
      reporting = false;
    }
  };

  const describe = (value) => {
    if (value instanceof Error) return `${value.name}: ${value.message}`;
    if (typeof value === "string") return value;
    try {
      const text = stringify(value);
      return text === undefined ? String(value) : text;
    } catch (_ignored) {
      return String(value);
    }
  };

  // The first stack frame outside this script: where the page called console.error.
  const FRAME = /\(?((?:https?|file|blob|data):[^\s)]*?):(\d+):(\d+)\)?\s*$/;
  const callerOf = (stack) => {
    for (const line of String(stack || "").split("\n").slice(1)) {
      if (line.includes("chrome-extension://")) continue;
      const match = FRAME.exec(line);
      if (match) return { url: match[1], line: Number(match[2]), column: Number(match[3]) };
    }
    return { url: location.href, line: null, column: null };
  };

  window.addEventListener(
    "error",
    (event) => {
      if (event instanceof ErrorEvent) {
        const error = event.error;
        send({
          type: "error",
          message: error instanceof Error ? describe(error) : describe(error ?? event.message),
          url: event.filename || location.href,
          line: event.lineno || null,
          column: event.colno || null,
          stack: error instanceof Error ? String(error.stack || "") : "",
          timestamp: Date.now(),
        });
        return;
      }
      const target = event.target;
      if (!target || target === window || !(target instanceof Element)) return;
      const source = target.currentSrc || target.src || target.href || "";
      send({
        type: "network",
        message: `failed to load <${target.tagName.toLowerCase()}> ${source}`,
        url: String(source),
        line: null,
        column: null,
        stack: "",
        timestamp: Date.now(),
      });
    },
    true,
  );

  window.addEventListener("unhandledrejection", (event) => {
    const reason = event.reason;
    const where = reason instanceof Error ? callerOf(`\n${reason.stack || ""}`) : callerOf("");
    send({
      type: "unhandledrejection",
      message: describe(reason),
      url: where.url,
      line: where.line,
      column: where.column,
      stack: reason instanceof Error ? String(reason.stack || "") : "",
      timestamp: Date.now(),
    });
  });

  console.error = function error(...args) {
    const stack = new Error().stack;
    const where = callerOf(stack);
    send({
      type: "console",
      message: args.map(describe).join(" "),
      url: where.url,
      line: where.line,
      column: where.column,
      stack: String(stack || "").split("\n").slice(2).join("\n"),
      timestamp: Date.now(),
    });
    return Reflect.apply(originalConsoleError, this, args);
  };
})();
