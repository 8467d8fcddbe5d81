"""A local web site (aiohttp, own thread and loop) whose pages produce each kind of error.

It runs in a thread so that blocking ``visit`` calls in tests can reach it while the
test's own event loop is not running.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

ERRORS_PAGE = """<!doctype html>
<html><head><title>Errors</title>
<script>
console.error("console says", 42);
setTimeout(() => { throw new TypeError("thrown from a timer"); }, 0);
Promise.reject(new Error("rejected promise"));
</script></head>
<body>
<img src="/missing.png">
<script>
document.cookie = "session=cookie-secret; path=/";
Promise.allSettled([
  fetch("http://127.0.0.1:CLOSED_PORT/refused"),
  fetch("/api/private?token=query-secret&q=1", {
    headers: {
      "Authorization": "Bearer header-secret", "X-Api-Key": "key-secret", "X-Trace": "visible",
    },
  }),
]).then(() => { document.title = "done"; });
</script>
</body></html>
"""

NAVIGATE_PAGE = """<!doctype html><html><head><title>Before</title>
<script>
console.error("before navigation");
window.addEventListener("load", () => setTimeout(() => { location.href = "/landing"; }, 0));
</script></head><body>first</body></html>
"""

LANDING_PAGE = """<!doctype html><html><head><title>Landing</title>
<script>throw new RangeError("after navigation");</script></head><body>landed</body></html>
"""

MANY_ERRORS_PAGE = """<!doctype html><html><head><title>Many</title>
<script>for (let i = 0; i < {count}; i++) console.error("error " + i);</script>
</head><body></body></html>
"""

HELLO_PAGE = """<!doctype html><html><head><title>Hello {name}</title></head>
<body><h1>hello</h1></body></html>
"""


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html")


def build_app(closed_port: int) -> web.Application:
    """The site's routes; ``closed_port`` is a local port nothing listens on."""

    async def errors(_: web.Request) -> web.Response:
        return _html(ERRORS_PAGE.replace("CLOSED_PORT", str(closed_port)))

    async def private(_: web.Request) -> web.Response:
        return web.json_response({"error": "unauthorized"}, status=401)

    async def navigate(_: web.Request) -> web.Response:
        return _html(NAVIGATE_PAGE)

    async def landing(_: web.Request) -> web.Response:
        return _html(LANDING_PAGE)

    async def many(request: web.Request) -> web.Response:
        return _html(MANY_ERRORS_PAGE.format(count=int(request.query.get("n", "10"))))

    async def hello(request: web.Request) -> web.Response:
        return _html(HELLO_PAGE.format(name=request.query.get("name", "world")))

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.query.get("ms", "300")) / 1000)
        return _html(HELLO_PAGE.format(name="slow"))

    async def favicon(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/errors", errors)
    app.router.add_get("/api/private", private)
    app.router.add_get("/navigate", navigate)
    app.router.add_get("/landing", landing)
    app.router.add_get("/many", many)
    app.router.add_get("/hello", hello)
    app.router.add_get("/slow", slow)
    app.router.add_get("/favicon.ico", favicon)
    return app


class Site:
    """The site, served on ``127.0.0.1:<port>`` from a background thread."""

    def __init__(self, closed_port: int) -> None:
        self._app = build_app(closed_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        self.port = 0

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path`` on this site."""
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        """Start serving; returns once the port is bound."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        await self._runner.cleanup()
        # A handler still sleeping (the slow page) outlives the runner's shutdown timeout:
        # cancel it here rather than leave it pending when the loop closes.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        """Stop serving and close the loop."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
