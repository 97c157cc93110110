"""The REST plumbing every call goes through: routing, rate-limit windows and headers, forced 429s,
stalls, outages and held requests.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import BodyPartReader, web

from tests.harness.emulator.validation import Validation
from tests.harness.emulator.wire import (
    _API_PREFIX,
    _GENERIC_LIMIT,
    ATTACHMENT_SIZE_LIMIT,
    RecordedRequest,
    RequestHold,
    _Call,
    _ceil3,
    _error,
    _ForcedLimit,
    _HTTPError,
    _json_response,
    _loads,
    _Route,
    _Upload,
    _Window,
)


class RateLimits(Validation):
    """The `ratelimit` layer of `DiscordEmulator`: what the module docstring describes."""

    def hold_requests(self, method: str, path: str) -> RequestHold:
        """Hold REST calls whose method and path (below /api/v10, a regex) match, until released.

        ``hold_requests("PUT", ROLE_ADD)`` holds every role addition."""
        hold = RequestHold(method, path)
        self._holds.append(hold)
        return hold

    def set_rest_outage(self, status: int | None) -> None:
        """While set, every REST call answers ``status``; None restores service."""
        self._rest_outage = status

    def rate_limit(
        self,
        method: str,
        path: str,
        retry_after: float,
        *,
        times: int = 1,
        scope: str = "user",
        is_global: bool = False,
        when: Callable[[Any], bool] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method path`` (relative to /api/v10, e.g.
        ``"/channels/1/messages"``) with a 429 asking for ``retry_after`` seconds, as Discord
        does behind Cloudflare: ``Via``, ``Retry-After``, the X-RateLimit-* headers of an empty
        bucket (``X-RateLimit-Scope``, ``X-RateLimit-Global`` when global) and the JSON body.
        ``when(body)``: only calls whose JSON body it accepts (one post among others)."""
        if retry_after <= 0 or times < 1:
            raise ValueError("retry_after must be positive and times at least 1")
        key = (method.upper(), path)
        self._forced_limits[key] = _ForcedLimit(retry_after, times, scope, is_global, when)

    def stall(
        self, method: str, path: str, *, times: int = 1, when: Callable[[Any], bool] | None = None
    ) -> None:
        """Leave the next ``times`` calls of ``method path`` (those whose JSON body ``when``
        accepts) unanswered until ``release_stalled()`` (or ``stop()``); then they are handled,
        late, as a slow Discord would handle them even after the client gave up."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._stalls[(method.upper(), path)] = (times, when)

    def release_stalled(self) -> None:
        event, self._stall_release = self._stall_release, asyncio.Event()
        event.set()

    async def wait_stalled(self, count: int = 1, timeout: float = 10) -> None:
        """Until ``count`` calls in all have been left hanging by ``stall()``."""
        await self._wait_until(lambda: self.stalled_count >= count, timeout, "a stalled call")

    # ------------------------------------------------------------------ internals: HTTP plumbing

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        path_matched = False
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            path_matched = True
        if path_matched:
            raise _error(405, "405: Method Not Allowed", 0)
        raise _error(404, "404: Not Found", 0)

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        """Every REST call: outage, routing, auth, rate limits, handler, headers, recording."""
        loop = asyncio.get_running_loop()
        prefixed = _API_PREFIX.match(request.path)
        path = prefixed.group(1) if prefixed else request.path
        body: Any = None
        bucket, major = "unrouted", ""
        try:
            if prefixed is None:
                raise _error(404, "404: Not Found", 0)
            if self._rest_outage is not None:
                phrase = HTTPStatus(self._rest_outage).phrase
                raise _error(self._rest_outage, f"{self._rest_outage}: {phrase}", 0)
            route, params = self._match(request.method, path)
            bucket = route.bucket
            major = params.get("channel") or params.get("guild") or params.get("app") or ""
            if "token" in params:
                major = f"{major}+{params['token']}"
            if route.auth and request.headers.get("Authorization") != f"Bot {self.token}":
                raise _error(401, "401: Unauthorized", 0)
            call = await self._read_call(request, params)
            body = call.body
            await self._maybe_stall(request.method, path, body)
            for hold in list(self._holds):
                if hold.matches(request.method, path):
                    await hold.wait()
            headers = self._consume_rate_limit(route, path, params, body, loop.time())
            response = await route.handler(call)
            response.headers.update(headers)
        except _HTTPError as exc:
            headers = self._peek_rate_limit(bucket, major, loop.time())
            headers.update(exc.headers)
            response = _json_response(exc.status, exc.body, headers)
        self.requests.append((request.method, path, response.status))
        self.request_log.append(
            RecordedRequest(
                method=request.method,
                path=path,
                status=response.status,
                query=dict(request.query),
                body=body,
                reason=request.headers.get("X-Audit-Log-Reason"),
                at=time.time(),
            )
        )
        return response

    async def _read_call(self, request: web.Request, params: dict[str, str]) -> _Call:
        call = _Call(request, params)
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                raw = bytes(await part.read(decode=False))
                if part.name == "payload_json":
                    call.body = _loads(raw)
                else:
                    call.files.append(
                        _Upload(
                            part.name or "",
                            part.filename or "file",
                            part.headers.get("Content-Type", "application/octet-stream"),
                            raw,
                        )
                    )
            if sum(len(f.data) for f in call.files) > ATTACHMENT_SIZE_LIMIT:
                raise _error(413, "Request entity too large", 40005)
        else:
            raw = await request.read()
            if raw:
                call.body = _loads(raw)
        return call

    def _window_headers(self, window: _Window, now: float, bucket: str) -> dict[str, str]:
        reset_after = _ceil3(window.reset_after(now))
        return {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(max(window.limit - window.count, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }

    def _generic_window(self, bucket: str, major: str, now: float) -> _Window:
        window = self._windows.setdefault((bucket, major), _Window(*_GENERIC_LIMIT))
        window.roll(now)
        return window

    def _peek_rate_limit(self, bucket: str, major: str, now: float) -> dict[str, str]:
        return self._window_headers(self._generic_window(bucket, major, now), now, bucket)

    def _too_many(
        self,
        window: _Window,
        now: float,
        bucket: str,
        scope: str,
        *,
        retry_after: float | None = None,
        is_global: bool = False,
    ) -> _HTTPError:
        """A 429 for ``window``, or, with ``retry_after``, for a bucket empty until then."""
        self.rate_limited_count += 1
        headers = self._window_headers(window, now, bucket)
        if retry_after is None:
            retry_after = max(_ceil3(window.reset_after(now)), 0.001)
        else:
            headers.update(
                {
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                }
            )
        headers.update(
            {
                "Retry-After": str(math.ceil(retry_after)),
                "Via": "1.1 google",
                "X-RateLimit-Scope": scope,
            }
        )
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": is_global,
        }
        return _HTTPError(429, body, headers)

    async def _maybe_stall(self, method: str, path: str, body: Any) -> None:
        stall = self._stalls.get((method, path))
        if stall is None:
            return
        left, when = stall
        if when is not None and not when(body):
            return
        if left == 1:
            del self._stalls[(method, path)]
        else:
            self._stalls[(method, path)] = (left - 1, when)
        release = self._stall_release
        self.stalled_count += 1
        self._notify()
        await release.wait()

    def _consume_rate_limit(
        self, route: _Route, path: str, params: dict[str, str], body: Any, now: float
    ) -> dict[str, str]:
        """Apply a 429 the test asked for, the per-route bucket and, for message writes, the
        per-channel limit."""
        major = params.get("channel") or params.get("guild") or params.get("app") or ""
        if "token" in params:
            major = f"{major}+{params['token']}"
        window = self._generic_window(route.bucket, major, now)
        forced = self._forced_limits.get((route.method, path))
        if forced is not None and (forced.when is None or forced.when(body)):
            forced.times -= 1
            if forced.times == 0:
                del self._forced_limits[(route.method, path)]
            raise self._too_many(
                window,
                now,
                route.bucket,
                forced.scope,
                retry_after=forced.retry_after,
                is_global=forced.is_global,
            )
        channel_window: _Window | None = None
        if route.channel_limited:
            cid = int(params["channel"])
            limit, period = self.channel_rate_limit
            channel_window = self._channel_windows.setdefault(cid, _Window(limit, period))
            channel_window.roll(now)
            if channel_window.count >= channel_window.limit:
                if self.advertise_channel_limit:
                    raise self._too_many(channel_window, now, "channel-messages", "user")
                error = self._too_many(channel_window, now, route.bucket, "shared")
                # Shared-scope 429s report the (untouched) per-route bucket, as Discord does.
                error.headers.update(self._window_headers(window, now, route.bucket))
                raise error
        if window.count >= window.limit:
            raise self._too_many(window, now, route.bucket, "user")
        window.count += 1
        if channel_window is not None:
            channel_window.count += 1
            if self.advertise_channel_limit:
                return self._window_headers(channel_window, now, "channel-messages")
        return self._window_headers(window, now, route.bucket)
