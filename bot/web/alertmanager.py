"""`POST /webhooks/alertmanager`: Alertmanager's webhook, authorised, validated, stored, then 2xx.

Answers (always JSON):
- 200 `{"status": "accepted" | "duplicate", "dedupe_key", "notification_id"}`: stored (or
  already); the group is updated from the stored body right after, by the processor.
- 400 malformed JSON or a payload that is not Alertmanager's version 4, naming the field; also
  a value the database could not store (a timestamp outside years 1..9999 in UTC or without an
  offset, a NUL in a text column): refused here, never a 503 that Alertmanager retries for ever.
- 401 without the right `Authorization: Bearer <[alertmanager] webhook_token>` (whatever bytes
  the header carries).
- 413 body over 1 MiB. 415 not JSON.
- 503 when `[alertmanager]` is not configured, or the database did not store it (Alertmanager
  retries 5xx, so nothing is lost).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from bot.domain.alerts import IngestResult, WebhookPayload
from bot.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
ROUTE = "/webhooks/alertmanager"

Ingest = Callable[[WebhookPayload, str], Awaitable[IngestResult]]
"""Store a validated body; the second argument is the body's JSON text as it arrived."""


@dataclass(frozen=True)
class AlertmanagerWebhook:
    token: bytes
    ingest: Ingest
    metrics: Metrics


WEBHOOK_KEY = web.AppKey("alertmanager_webhook", AlertmanagerWebhook)


def _error(status: int, message: str, **extra: object) -> web.Response:
    body = {"error": message, **extra}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def _authorized(header: str | None, token: bytes) -> bool:
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    try:
        # aiohttp keeps bytes that are not UTF-8 as surrogates: back to the bytes that came, so
        # a non-ASCII byte is one more wrong token (401), not an encoding error (500).
        given = credentials.strip().encode("utf-8", "surrogateescape")
    except UnicodeError:
        return False
    # Constant time whatever the input; compare_digest on bytes of any length is safe.
    return hmac.compare_digest(given, token)


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


async def alertmanager_webhook(request: web.Request) -> web.Response:
    webhook = request.app.get(WEBHOOK_KEY)
    if webhook is None:
        return _error(
            503,
            "the Alertmanager webhook is not configured: set [alertmanager] webhook_token",
        )
    received = webhook.metrics.alert_notifications
    if not _authorized(request.headers.get("Authorization"), webhook.token):
        received.labels("unauthorized").inc()
        return web.json_response(
            {"error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="hh-opsbot"', "Cache-Control": "no-store"},
        )
    if request.content_length is not None and request.content_length > MAX_BODY:
        received.labels("too_large").inc()
        return _error(413, f"body over {MAX_BODY} bytes")
    if request.content_type not in ("application/json", "text/plain", ""):
        received.labels("invalid").inc()
        return _error(415, "expected Content-Type: application/json")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            received.labels("too_large").inc()
            return _error(413, f"body over {MAX_BODY} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        # Parsed and validated in one pass by pydantic's JSON parser; the body is then stored
        # as the text that arrived, not decoded and encoded again.
        payload = WebhookPayload.model_validate_json(raw)
    except ValidationError as exc:
        received.labels("invalid").inc()
        errors = exc.errors(include_input=False, include_url=False)
        first = errors[0]
        if first["type"] == "json_invalid":
            return _error(400, f"malformed JSON: {first['msg']}"[:300])
        if first["type"] == "model_type" and not first["loc"]:
            return _error(400, "the body must be a JSON object", field="(body)")
        field = _field_name(first["loc"])
        return _error(
            400,
            f"not an Alertmanager version 4 payload: {field}: {first['msg']}",
            field=field,
            errors=[{"field": _field_name(e["loc"]), "message": e["msg"]} for e in errors[:20]],
        )
    try:
        result = await webhook.ingest(payload, raw.decode())
    except Exception:
        received.labels("error").inc()
        log.exception("could not store an Alertmanager notification (%s)", payload.group_key[:200])
        return _error(503, "not stored: Alertmanager should retry")
    received.labels(result.outcome).inc()
    body: dict[str, Any] = {"status": result.outcome, "dedupe_key": result.dedupe_key}
    if result.notification_id is not None:
        body["notification_id"] = result.notification_id
    if result.group_id is not None:
        body["group_id"] = result.group_id
    return web.json_response(body, status=200, headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    app.router.add_post(ROUTE, alertmanager_webhook)
