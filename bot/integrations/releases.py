"""Fetching release manifests and their `.minisig` over HTTP(S): timeouts, a size cap, no surprises.

Only http:// and https:// URLs, under the address rules of member-supplied URLs
(`bot.domain.addresses`: no loopback unless `[health] allow_loopback`, no link-local, metadata
or unspecified address, in any spelling, checked again at connect time for names); redirects
only to the same host (the GitHub releases poll may follow GitHub's CDN elsewhere, under the
same rules); a body larger than the cap is refused while reading (never buffered whole).
Every failure to fetch is one `FetchError` text, "could not fetch <url>": refused, reset,
timed out or answered 404 read the same, so the error cannot be used to map ports. The detail
goes to the log. The verification itself is `bot.domain.minisign` (pure Python).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from bot.domain.addresses import ForbiddenAddress
from bot.domain.addresses import check_url as check_address
from bot.domain.errors import InvalidInput
from bot.domain.releases import MAX_MANIFEST_BYTES
from bot.integrations.outbound import guarded_connector, refusal_of

log = logging.getLogger(__name__)

CHUNK = 16 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3


class FetchError(InvalidInput):
    """The manifest or its signature could not be fetched."""


class _NotFetched(Exception):
    """Why a fetch failed, for the log only."""


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


def _host(url: URL) -> str:
    return (url.host or "").lower().rstrip(".")


class HttpManifestFetcher:
    def __init__(
        self,
        session_factory: type[aiohttp.ClientSession] = aiohttp.ClientSession,
        *,
        timeout: float = 10.0,
        max_bytes: int = MAX_MANIFEST_BYTES,
        allow_loopback: bool = False,
    ) -> None:
        self._session_factory = session_factory
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._allow_loopback = allow_loopback

    async def fetch(self, url: str, *, cross_host: bool = False) -> bytes:
        """The body at `url`. `cross_host`: redirects may leave the URL's host (a source the
        config names, such as GitHub's download URLs); each hop is still under the rules."""
        url = check_url(url)
        check_address(url, allow_loopback=self._allow_loopback, what="The manifest URL")
        try:
            async with asyncio.timeout(self._timeout):
                return await self._fetch(URL(url), cross_host=cross_host)
        except FetchError:
            raise
        except TimeoutError:
            reason = f"no answer within {self._timeout:g} s"
        except _NotFetched as exc:
            reason = str(exc)
        except ForbiddenAddress as exc:
            reason = f"redirect to a forbidden address ({exc.refusal})"
        except aiohttp.ClientError as exc:
            refused = refusal_of(exc)
            reason = f"address not allowed ({refused})" if refused else type(exc).__name__
        except (OSError, ValueError) as exc:
            reason = type(exc).__name__
        log.info("manifest fetch from %s failed: %s", shown(url), reason)
        raise FetchError(f"could not fetch {shown(url)}.")

    async def _fetch(self, url: URL, *, cross_host: bool) -> bytes:
        origin = url
        connector = guarded_connector(allow_loopback=self._allow_loopback)
        async with self._session_factory(
            timeout=aiohttp.ClientTimeout(total=self._timeout), connector=connector
        ) as session:
            for _hop in range(MAX_REDIRECTS + 1):
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in REDIRECTS:
                        url = self._next(origin, url, response, cross_host=cross_host)
                        continue
                    if response.status != 200:
                        raise _NotFetched(f"HTTP {response.status}")
                    return await self._body(response, origin)
        raise _NotFetched(f"more than {MAX_REDIRECTS} redirects")

    def _next(
        self, origin: URL, current: URL, response: aiohttp.ClientResponse, *, cross_host: bool
    ) -> URL:
        location = response.headers.get("Location")
        if not location:
            raise _NotFetched(f"HTTP {response.status} without a Location")
        target = current.join(URL(location))
        if target.scheme not in ("http", "https") or not target.host:
            raise _NotFetched("redirect to something other than an http(s) URL")
        if current.scheme == "https" and target.scheme == "http":
            raise _NotFetched("redirect from https to http")
        if not cross_host and _host(target) != _host(origin):
            raise _NotFetched(f"redirect to another host ({_host(target)[:100]})")
        check_address(str(target), allow_loopback=self._allow_loopback)
        return target

    async def _body(self, response: aiohttp.ClientResponse, origin: URL) -> bytes:
        too_large = f"{shown(str(origin))} is too large (over {self._max_bytes} bytes)."
        if (response.content_length or 0) > self._max_bytes:
            raise FetchError(too_large)
        body = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK):
            body += chunk
            if len(body) > self._max_bytes:
                raise FetchError(too_large)
        return bytes(body)
