"""`POST /webhooks/github`: GitHub's webhook, verified, validated, stored, then 2xx.

Answers (always JSON, or empty for 204):
- 202 `{"status": "accepted", "delivery": <id>}`: stored; applied right after by the outbox.
- 200 `{"status": "duplicate"}`: this `X-GitHub-Delivery` was stored already (a redelivery):
  nothing is posted twice.
- 204: a `ping` (after its signature is checked) or an event the bot does not use.
- 400 a body that is not the event it claims, naming the field (`field`); also a missing
  `X-GitHub-Event` or `X-GitHub-Delivery` header.
- 401 a missing or wrong `X-Hub-Signature-256` (HMAC-SHA256 of the body with
  `[github] webhook_secret`, compared in constant time): nothing is stored.
- 413 body over 1 MiB (announced by Content-Length or found while reading).
- 415 not JSON (GitHub's webhook content type must be `application/json`; a `ping` says so
  too, so a webhook set to form encoding fails at once).
- 503 when `[github] webhook_secret` is not configured, or the database did not store it
  (GitHub does not retry by itself: redeliver from the webhook's "Recent deliveries").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from bot.domain.devlog import EVENT_MODELS, MAX_BODY, USED_EVENTS, Received, parse_event
from bot.metrics import Metrics

log = logging.getLogger(__name__)

ROUTE = "/webhooks/github"
SIGNATURE_PREFIX = "sha256="
DELIVERY_MAX = 64

Receive = Callable[[str, str, Mapping[str, Any]], Awaitable[Received]]
"""Store a validated delivery: (delivery id, event, the event as the bot keeps it)."""


@dataclass(frozen=True)
class GitHubWebhook:
    secret: bytes
    receive: Receive
    metrics: Metrics


WEBHOOK_KEY = web.AppKey("github_webhook", GitHubWebhook)


def _error(status: int, message: str, **extra: object) -> web.Response:
    body = {"error": message, **extra}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def signature_of(secret: bytes, body: bytes) -> str:
    """`X-Hub-Signature-256` as GitHub computes it."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verified(header: str | None, secret: bytes, body: bytes) -> bool:
    """Constant time whatever the header carries (bytes that are not ASCII are one more wrong
    signature, never an error)."""
    given = (header or "").strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, signature_of(secret, body).encode())


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


async def _read(request: web.Request) -> bytes | None:
    """The body, or None when it is over the limit (read no further)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def github_webhook(request: web.Request) -> web.StreamResponse:
    webhook = request.app.get(WEBHOOK_KEY)
    if webhook is None:
        return _error(
            503, "the GitHub webhook is not configured: set [github] webhook_secret (or its file)"
        )
    received = webhook.metrics.github_deliveries
    if request.content_length is not None and request.content_length > MAX_BODY:
        received.labels("too_large").inc()
        return _error(413, f"body over {MAX_BODY} bytes")
    body = await _read(request)
    if body is None:
        received.labels("too_large").inc()
        return _error(413, f"body over {MAX_BODY} bytes")
    if not verified(request.headers.get("X-Hub-Signature-256"), webhook.secret, body):
        received.labels("unauthorized").inc()
        return _error(401, "missing or wrong X-Hub-Signature-256")
    if request.content_type not in ("application/json", ""):
        received.labels("invalid").inc()
        return _error(415, "expected Content-Type: application/json (the webhook's content type)")
    event = request.headers.get("X-GitHub-Event", "").strip()
    if not event:
        received.labels("invalid").inc()
        return _error(400, "missing X-GitHub-Event header", field="X-GitHub-Event")
    if event == "ping" or event not in USED_EVENTS:
        received.labels("ignored").inc()
        return web.Response(status=204, headers={"Cache-Control": "no-store"})
    delivery = request.headers.get("X-GitHub-Delivery", "").strip()
    if not delivery or len(delivery) > DELIVERY_MAX or not delivery.isascii():
        received.labels("invalid").inc()
        return _error(
            400, "missing or malformed X-GitHub-Delivery header", field="X-GitHub-Delivery"
        )
    try:
        parsed = parse_event(event, body)
    except ValidationError as exc:
        received.labels("invalid").inc()
        errors = exc.errors(include_input=False, include_url=False)
        first = errors[0]
        if first["type"] == "json_invalid":
            return _error(400, f"malformed JSON: {first['msg']}"[:300], field="(body)")
        field = _field_name(first["loc"])
        return _error(
            400,
            f"not a GitHub {event} event: {field}: {first['msg']}"[:500],
            field=field,
            errors=[{"field": _field_name(e["loc"]), "message": e["msg"]} for e in errors[:20]],
        )
    try:
        result = await webhook.receive(
            delivery, event, json.loads(parsed.model_dump_json(exclude_none=True))
        )
    except Exception:
        received.labels("error").inc()
        log.exception("could not store GitHub delivery %s (%s)", delivery[:64], event)
        return _error(503, "not stored: redeliver it from the webhook's Recent Deliveries")
    received.labels(result.outcome).inc()
    if result.outcome == "duplicate":
        return web.json_response(
            {"status": "duplicate", "delivery": delivery},
            status=200,
            headers={"Cache-Control": "no-store"},
        )
    return web.json_response(
        {"status": "accepted", "delivery": delivery},
        status=202,
        headers={"Cache-Control": "no-store"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post(ROUTE, github_webhook)


__all__ = ["EVENT_MODELS", "ROUTE", "WEBHOOK_KEY", "GitHubWebhook", "add_routes", "signature_of"]
