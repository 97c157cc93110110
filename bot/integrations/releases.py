"""Fetching release manifests and their `.minisig` over HTTP(S): timeouts, a size cap, no surprises.

Only http:// and https:// URLs; a body larger than the cap is refused while reading (never
buffered whole); every failure is a `FetchError` whose message names the URL and the reason,
never a traceback. The verification itself is `bot.domain.minisign` (pure Python).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from bot.domain.errors import InvalidInput
from bot.domain.releases import MAX_MANIFEST_BYTES

CHUNK = 16 * 1024


class FetchError(InvalidInput):
    """The manifest or its signature could not be fetched."""


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("The manifest URL must be an http:// or https:// URL.")
    return url.strip()


def shown(url: str) -> str:
    """The URL as shown in messages: no credentials, no query string, bounded."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"[:300]


class HttpManifestFetcher:
    def __init__(
        self,
        session_factory: type[aiohttp.ClientSession] = aiohttp.ClientSession,
        *,
        timeout: float = 10.0,
        max_bytes: int = MAX_MANIFEST_BYTES,
    ) -> None:
        self._session_factory = session_factory
        self._timeout = timeout
        self._max_bytes = max_bytes

    async def fetch(self, url: str) -> bytes:
        url = check_url(url)
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with (
                self._session_factory(timeout=timeout) as session,
                session.get(url, allow_redirects=True, max_redirects=3) as response,
            ):
                if response.status != 200:
                    raise FetchError(f"{shown(url)} answered HTTP {response.status}.")
                if (response.content_length or 0) > self._max_bytes:
                    raise FetchError(f"{shown(url)} is too large (over {self._max_bytes} bytes).")
                body = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK):
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise FetchError(
                            f"{shown(url)} is too large (over {self._max_bytes} bytes)."
                        )
                return bytes(body)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(f"{shown(url)} did not answer within {self._timeout:g} s.") from None
        except aiohttp.ClientError as exc:
            raise FetchError(f"{shown(url)} is unreachable ({type(exc).__name__}).") from None
