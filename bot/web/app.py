"""`GET /healthz`, `GET /metrics`, `POST /webhooks/alertmanager` (bot/web/alertmanager.py) and
`POST /webhooks/github` (bot/web/github.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import __version__
from bot.metrics import Metrics
from bot.web import alertmanager, github

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class HealthSources:
    """What /healthz asks: is the gateway ready (and where it is when not), does the database
    answer."""

    discord_ready: Callable[[], bool]
    database_ping: Callable[[], Awaitable[float]]
    discord_state: Callable[[], str] | None = None
    """Where the gateway is when not ready ("login failing (HTTP 503); retrying", ...)."""


METRICS_KEY = web.AppKey("metrics", Metrics)
HEALTH_KEY = web.AppKey("health", HealthSources)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS_KEY]
    route = _route_label(request)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.web_requests.labels(route, request.method, str(status)).inc()
        metrics.web_latency.labels(route).observe(time.perf_counter() - start)


def _route_label(request: web.Request) -> str:
    """The route's pattern, never the raw path: unmatched paths must not blow up cardinality."""
    route = request.match_info.route
    resource = route.resource
    if resource is None or isinstance(request.match_info.http_exception, web.HTTPNotFound):
        return "unmatched"
    return resource.canonical


async def healthz(request: web.Request) -> web.Response:
    sources = request.app[HEALTH_KEY]
    metrics = request.app[METRICS_KEY]
    discord_ok = sources.discord_ready()
    try:
        latency = await sources.database_ping()
        database_ok = True
        metrics.database_up.set(1)
        metrics.database_latency.set(latency)
    except (TimeoutError, Exception) as exc:
        database_ok = False
        metrics.database_up.set(0)
        log.warning("health check: database did not answer (%s)", type(exc).__name__)
    checks = [("discord", discord_ok), ("database", database_ok)]
    failing = [name for name, ok in checks if not ok]
    body = {
        "status": "ok" if not failing else "fail",
        "discord": "ready"
        if discord_ok
        else (sources.discord_state() if sources.discord_state else "not ready"),
        "database": "ok" if database_ok else "unreachable",
        "version": __version__,
    }
    if failing:
        body["failing"] = ", ".join(failing)
    return json_response(body, status=200 if not failing else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


def json_response(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def create_app(
    metrics: Metrics,
    health: HealthSources,
    *,
    alertmanager_token: str | None = None,
    ingest: alertmanager.Ingest | None = None,
    github_secret: str | None = None,
    github_receive: github.Receive | None = None,
) -> web.Application:
    """Without `alertmanager_token` and `ingest`, the Alertmanager webhook answers 503 (not
    configured); without `github_secret` and `github_receive`, so does GitHub's."""
    app = web.Application(middlewares=[metrics_middleware], client_max_size=1024**2)
    app[METRICS_KEY] = metrics
    app[HEALTH_KEY] = health
    if alertmanager_token and ingest is not None:
        app[alertmanager.WEBHOOK_KEY] = alertmanager.AlertmanagerWebhook(
            alertmanager_token.encode(), ingest, metrics
        )
    if github_secret and github_receive is not None:
        app[github.WEBHOOK_KEY] = github.GitHubWebhook(
            github_secret.encode(), github_receive, metrics
        )
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/metrics", metrics_endpoint)
    alertmanager.add_routes(app)
    github.add_routes(app)
    return app


class WebServer:
    """Starts and stops the app inside the running loop (no `web.run_app`, which owns the loop)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self._host, self._port = host, port
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port: int | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("web server listening on http://%s:%s", self._host, self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()
