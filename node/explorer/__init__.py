"""The chain explorer: a static single-page app (HTML, CSS, plain JavaScript) each node serves.

The files ship inside the package (no build step, no CDN) and talk only to the node that
served them: its REST API for pages and its ``/events`` WebSocket for live blocks. ``GET /``
answers ``index.html``; ``GET /explorer/{name}`` answers the page's script and stylesheet.
Only the files listed in ``FILES`` are served, read once and kept in memory, so a request
path can never reach anything else on disk.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

DIRECTORY = Path(__file__).parent
FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
# The page loads nothing from elsewhere and runs no inline script.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")


class Explorer:
    def __init__(self, directory: Path = DIRECTORY) -> None:
        self.files = {name: (directory / name).read_bytes() for name in FILES}

    def _file(self, name: str) -> web.Response:
        return web.Response(body=self.files[name], content_type=FILES[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache",
                                     "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                                     "X-Content-Type-Options": "nosniff"})

    async def index(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.files or name == "index.html":
            raise web.HTTPNotFound(reason="no such explorer file")
        return self._file(name)


def add_routes(router: web.UrlDispatcher) -> None:
    explorer = Explorer()
    router.add_get("/", explorer.index)
    router.add_get("/explorer/{name}", explorer.asset)
