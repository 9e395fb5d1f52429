"""The HTTP side of observability: ``/metrics``, ``/health``, the pages, and the
``X-Request-ID`` middleware that hands a caller's call id to every HTTP route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gleitzeit.health import health_row
from gleitzeit.request import CALL_ID, new_call_id, valid_call_id
from gleitzeit.socketio.guard import AccessDenied

if TYPE_CHECKING:
    from gleitzeit.host import Host
    from gleitzeit.observe.metrics import Metrics
    from gleitzeit.socketio.guard import Guard

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "dashboard.html", "/chat": "chat.html"}
#: Where python-socketio serves (its default ``socketio_path``).
SOCKETIO_PATH = "/socket.io/"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def request_id_middleware() -> Any:
    """Take ``X-Request-ID`` (when it is a usable id; else a new id) as the call id of
    whatever the route dispatches; :func:`echo_request_id` sends it back."""
    from aiohttp import web

    @web.middleware
    async def middleware(request: Any, handler: Any) -> Any:
        if request.path.startswith(SOCKETIO_PATH):
            # A Socket.IO connection lives on in this request: each of its calls has
            # an id of its own.
            return await handler(request)
        call_id = valid_call_id(request.headers.get("X-Request-ID")) or new_call_id()
        token = CALL_ID.set(call_id)
        try:
            response = await handler(request)
        finally:
            CALL_ID.reset(token)
        if not response.prepared:
            response.headers.setdefault("X-Request-ID", call_id)
        return response

    return middleware


async def echo_request_id(request: Any, response: Any) -> None:
    """``on_response_prepare``: a response its handler sends itself (a stream, whose
    headers leave before the handler returns) carries the call id too."""
    call_id = CALL_ID.get()
    if call_id is not None:
        response.headers.setdefault("X-Request-ID", call_id)


class HttpRoutes:
    """``/metrics`` and ``/health`` (for the ``admin`` role when the server has
    credentials), and the static pages (public: they hold no data; their data comes
    over Socket.IO with a token)."""

    def __init__(self, host: Host, metrics: Metrics, guard: Guard) -> None:
        self.host = host
        self.metrics = metrics
        self.guard = guard

    def add_to(self, app: Any) -> None:
        app.middlewares.append(request_id_middleware())
        app.on_response_prepare.append(echo_request_id)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/health", self.health)
        for path in PAGES:
            app.router.add_get(path, self.page)
        app.router.add_get("/static/{name}", self.static)

    def _refused(self, request: Any) -> Any:
        from aiohttp import web

        try:
            self.guard.check_request(request, "admin")
        except AccessDenied as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return web.json_response(
                {"error": {"code": exc.code, "message": exc.message}},
                status=exc.status,
                headers=headers,
            )
        return None

    async def metrics_page(self, request: Any) -> Any:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        refused = self._refused(request)
        if refused is not None:
            return refused
        body = generate_latest(self.metrics.prometheus)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(self, request: Any) -> Any:
        """Per-instance health, last heartbeat, in-flight and latency; ``?check=1``
        runs the health checks first."""
        from aiohttp import web

        refused = self._refused(request)
        if refused is not None:
            return refused
        if request.query.get("check") in ("1", "true", "yes"):
            rows = await self.host.health()
        else:
            rows = [health_row(i) for i in sorted(self.host.registry, key=lambda i: i.id)]
        worst = "healthy"
        for row in rows:
            if row["status"] == "unhealthy":
                worst = "unhealthy"
            elif row["status"] == "degraded" and worst == "healthy":
                worst = "degraded"
        return web.Response(
            text=json.dumps({"status": worst, "instances": rows}, default=str),
            content_type="application/json",
        )

    async def page(self, request: Any) -> Any:
        return self._file(PAGES[request.path])

    async def static(self, request: Any) -> Any:
        return self._file(request.match_info["name"])

    def _file(self, name: str) -> Any:
        from aiohttp import web

        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(
            body=path.read_bytes(),
            content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )
