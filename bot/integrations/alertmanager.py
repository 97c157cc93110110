"""Alertmanager's API v2: create and expire silences. Every call has a timeout.

`[alertmanager] api_url` is Alertmanager's base URL (its `--web.external-url`, e.g.
`http://127.0.0.1:9093`); the API lives under `/api/v2`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

import aiohttp

from bot import __version__
from bot.domain.alerts import Silence
from bot.domain.errors import Unavailable

log = logging.getLogger(__name__)


class AlertmanagerClient:
    def __init__(self, api_url: str, *, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": f"hh-opsbot/{__version__}"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def create_silence(
        self,
        matchers: Mapping[str, str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> Silence:
        body = {
            "matchers": [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in sorted(matchers.items())
            ],
            "startsAt": _iso(starts_at),
            "endsAt": _iso(ends_at),
            "createdBy": created_by[:200],
            "comment": comment[:1000],
        }
        url = f"{self.api_url}/api/v2/silences"
        try:
            async with self._http().post(url, json=body) as response:
                text = await response.text()
                if response.status != 200:
                    log.warning(
                        "Alertmanager refused a silence: %s %s", response.status, text[:300]
                    )
                    raise Unavailable(
                        f"Alertmanager refused the silence ({response.status}): "
                        f"{text.strip()[:200]}"
                    )
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Alertmanager did not answer (%s)", type(exc).__name__)
            raise Unavailable(
                "Alertmanager did not answer: try again, or silence it in Alertmanager's UI."
            ) from exc
        silence_id = str(data.get("silenceID", "")) if isinstance(data, dict) else ""
        if not silence_id:
            raise Unavailable("Alertmanager answered without a silence id.")
        return Silence(id=silence_id, ends_at=ends_at, matchers=tuple(sorted(matchers.items())))

    async def expire_silence(self, silence_id: str) -> None:
        url = f"{self.api_url}/api/v2/silence/{silence_id}"
        try:
            async with self._http().delete(url) as response:
                text = await response.text()
                # 404 or "already expired": the silence is gone, which is what was asked.
                if response.status not in (200, 404) and "already expired" not in text:
                    raise Unavailable(
                        f"Alertmanager refused to expire the silence ({response.status}): "
                        f"{text.strip()[:200]}"
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable("Alertmanager did not answer: try again.") from exc

    async def get_silence(self, silence_id: str) -> dict[str, object]:
        url = f"{self.api_url}/api/v2/silence/{silence_id}"
        async with self._http().get(url) as response:
            response.raise_for_status()
            data = await response.json(content_type=None)
        return data if isinstance(data, dict) else {}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
