"""The manifest fetcher: http(s) only, a size cap enforced while streaming, a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.integrations.releases import FetchError, HttpManifestFetcher, shown
from tests.fakes.network import _Server, silent_server


class Streaming(_Server):
    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_get("/big", self._big)
        self.app.router.add_get("/small", self._small)
        self.app.router.add_get("/moved", self._moved)

    async def _big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()  # no Content-Length: the cap must hold while reading
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x" * 16384)
        await response.write_eof()
        return response

    async def _small(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=b'{"ok": true}')

    async def _moved(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/small")


@pytest.fixture
async def server() -> AsyncIterator[Streaming]:
    started = Streaming()
    await started.start()
    yield started
    await started.stop()


async def test_small_body_and_redirect(server: Streaming) -> None:
    fetcher = HttpManifestFetcher(timeout=2.0)
    assert await fetcher.fetch(f"{server.url}/small") == b'{"ok": true}'
    assert await fetcher.fetch(f"{server.url}/moved") == b'{"ok": true}'


async def test_chunked_body_over_the_cap_is_refused(server: Streaming) -> None:
    fetcher = HttpManifestFetcher(timeout=5.0, max_bytes=100_000)
    with pytest.raises(FetchError, match="too large"):
        await fetcher.fetch(f"{server.url}/big")


async def test_silent_server_times_out() -> None:
    listener, port = await silent_server()
    try:
        fetcher = HttpManifestFetcher(timeout=0.3)
        with pytest.raises(FetchError, match=r"did not answer within 0\.3 s"):
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
