"""The manifest fetcher: http(s) only, a size cap enforced while streaming, a timeout; the address
rules of member-supplied URLs, no cross-host redirects, one text for "could not fetch"."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.domain.addresses import ForbiddenAddress
from bot.integrations.releases import FetchError, HttpManifestFetcher, shown
from tests.fakes.network import _Server, resolve_as, silent_server


class Streaming(_Server):
    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_get("/big", self._big)
        self.app.router.add_get("/small", self._small)
        self.app.router.add_get("/moved", self._moved)
        self.app.router.add_get("/missing", self._missing)
        self.app.router.add_get("/away", self._away)
        self.away = "http://localhost:1/small"

    async def _big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()  # no Content-Length: the cap must hold while reading
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x" * 16384)
        await response.write_eof()
        return response

    async def _small(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        return web.Response(body=b'{"ok": true}')

    async def _moved(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/small")

    async def _missing(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        return web.Response(status=404, text="no such manifest on port 8443, try 8444")

    async def _away(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(self.away)


@pytest.fixture
async def server() -> AsyncIterator[Streaming]:
    started = Streaming()
    await started.start()
    yield started
    await started.stop()


LAB = True  # allow_loopback: the servers here listen on 127.0.0.1


async def test_small_body_and_redirect(server: Streaming) -> None:
    fetcher = HttpManifestFetcher(timeout=2.0, allow_loopback=LAB)
    assert await fetcher.fetch(f"{server.url}/small") == b'{"ok": true}'
    assert await fetcher.fetch(f"{server.url}/moved") == b'{"ok": true}'


async def test_chunked_body_over_the_cap_is_refused(server: Streaming) -> None:
    fetcher = HttpManifestFetcher(timeout=5.0, max_bytes=100_000, allow_loopback=LAB)
    with pytest.raises(FetchError, match="too large"):
        await fetcher.fetch(f"{server.url}/big")


async def test_silent_server_times_out() -> None:
    listener, port = await silent_server()
    try:
        fetcher = HttpManifestFetcher(timeout=0.3, allow_loopback=LAB)
        with pytest.raises(FetchError, match=r"^could not fetch http://127\.0\.0\.1:\d+/m"):
            await fetcher.fetch(f"http://127.0.0.1:{port}/manifest.json")
    finally:
        listener.close()
        await asyncio.wait_for(listener.wait_closed(), 5)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "not a url", "http://"])
async def test_only_http_urls(url: str) -> None:
    with pytest.raises(FetchError, match="http"):
        await HttpManifestFetcher().fetch(url)


def test_shown_url_drops_credentials_and_query() -> None:
    assert (
        shown("https://user:pw@127.0.0.1:8443/m.json?token=abc") == "https://127.0.0.1:8443/m.json"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/small",
        "http://localhost:{port}/small",
        "http://[::1]:{port}/small",
        "http://0x7f000001:{port}/small",
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://0.0.0.0:{port}/small",
    ],
)
async def test_forbidden_addresses_are_refused_before_asking(server: Streaming, url: str) -> None:
    """The default (no lab switch): loopback, metadata, unspecified, in any spelling."""
    with pytest.raises(ForbiddenAddress, match=r"^The manifest URL is refused: it names "):
        await HttpManifestFetcher(timeout=2.0).fetch(url.format(port=server.port))
    assert server.requests == 0


async def test_a_name_resolving_to_a_forbidden_address_is_refused_at_connect_time(
    server: Streaming, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name looks harmless, its address is loopback."""
    resolve_as(monkeypatch, "releases.rebind.example", "127.0.0.1")
    url = f"http://releases.rebind.example:{server.port}/small"
    with pytest.raises(FetchError, match=r"^could not fetch"):
        await HttpManifestFetcher(timeout=2.0).fetch(url)
    assert server.requests == 0
    assert await HttpManifestFetcher(timeout=2.0, allow_loopback=LAB).fetch(url) == b'{"ok": true}'


async def test_no_redirect_to_another_host(server: Streaming) -> None:
    server.away = f"http://localhost:{server.port}/small"
    fetcher = HttpManifestFetcher(timeout=2.0, allow_loopback=LAB)
    with pytest.raises(FetchError, match=r"^could not fetch"):
        await fetcher.fetch(f"{server.url}/away")
    assert server.requests == 0
    # The GitHub releases poll follows GitHub's CDN elsewhere: still under the address rules.
    assert await fetcher.fetch(f"{server.url}/away", cross_host=True) == b'{"ok": true}'
    server.away = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(FetchError, match=r"^could not fetch"):
        await fetcher.fetch(f"{server.url}/away", cross_host=True)


async def test_one_error_text_whatever_the_port_said(server: Streaming) -> None:
    """Refused, silent, 404 (with a chatty body) and a refused redirect read the same."""
    listener, silent = await silent_server()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    fetcher = HttpManifestFetcher(timeout=0.5, allow_loopback=LAB)
    texts = set()
    try:
        for port, path in ((closed, "small"), (silent, "small"), (server.port, "missing")):
            with pytest.raises(FetchError) as failed:
                await fetcher.fetch(f"http://127.0.0.1:{port}/{path}")
            texts.add(failed.value.user_message.replace(str(port), "PORT").replace(path, "P"))
        with pytest.raises(FetchError) as failed:
            await fetcher.fetch(f"http://127.0.0.1:{server.port}/away")
        texts.add(failed.value.user_message.replace(str(server.port), "PORT").replace("away", "P"))
    finally:
        listener.close()
        await asyncio.wait_for(listener.wait_closed(), 5)
    assert texts == {"could not fetch http://127.0.0.1:PORT/P."}
