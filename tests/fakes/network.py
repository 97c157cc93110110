"""Loopback stand-ins for the network's services, speaking each protocol on 127.0.0.1.

- `JsonService`: the Core's `/v1/health` and a node agent's `/v1/status` (plain HTTP JSON), with
  switches for slow, garbage and error answers.
- `BitcoindRPC`: bitcoind's JSON-RPC 1.0 shape (`{"result", "error", "id"}`), HTTP basic auth with
  a 401 on bad credentials, RPC errors as HTTP 500 with the error object, as bitcoind does.
- `LndREST`: lnd's REST gateway (`/v1/getinfo`, `/v1/channels`) over TLS with a self-signed
  certificate made here, checking the `Grpc-Metadata-macaroon` header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web


def self_signed(directory: Path, name: str = "lnd") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (like lnd's tls.cert); returns (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.cert", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Server:
    def __init__(self) -> None:
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.scheme = "http"
        self.requests = 0

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.2)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.scheme = "https" if ssl_context else "http"
        return self.url

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        released = getattr(self, "released", None)
        if released is not None:
            released.set()
        if self.runner is not None:
            await self.runner.cleanup()


class JsonService(_Server):
    """GET /v1/health and /v1/status answer `body`; `mode` switches to failures."""

    def __init__(self, body: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.body: dict[str, Any] = body or {"status": "ok"}
        self.mode = "ok"  # ok | slow | garbage | error | array | redirect
        self.error_body: dict[str, Any] = {"error": "agent crashed"}
        self.redirect_to = "/elsewhere"
        self.delay = 30.0
        self.released = asyncio.Event()
        self.app.router.add_get("/v1/health", self._handle)
        self.app.router.add_get("/v1/status", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), self.delay)
        if self.mode == "garbage":
            return web.Response(body=b"\x00\xffnot json<html>", content_type="application/json")
        if self.mode == "error":
            return web.json_response(self.error_body, status=500)
        if self.mode == "redirect":
            raise web.HTTPFound(self.redirect_to)
        if self.mode == "array":
            return web.json_response([1, 2, 3])
        return web.json_response(self.body)


class BitcoindRPC(_Server):
    """POST / with JSON-RPC 1.0; basic auth `user:password`."""

    def __init__(self, user: str = "rpcuser", password: str = "rpc-secret-pw") -> None:
        super().__init__()
        self.credentials = (user, password)
        self.blocks = 871234
        self.rpc_error: tuple[int, str] | None = None
        self.app.router.add_post("/", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        header = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
        if header != expected:
            # bitcoind: 401 with an empty body and WWW-Authenticate.
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        call = await request.json()
        if self.rpc_error is not None:
            code, message = self.rpc_error
            return web.json_response(
                {"result": None, "error": {"code": code, "message": message}, "id": call["id"]},
                status=500,
            )
        if call.get("method") != "getblockchaininfo":
            return web.json_response(
                {"result": None, "error": {"code": -32601, "message": "Method not found"}},
                status=404,
            )
        result = {
            "chain": "main",
            "blocks": self.blocks,
            "headers": self.blocks,
            "verificationprogress": 0.9999,
            "initialblockdownload": False,
        }
        return web.json_response({"result": result, "error": None, "id": call["id"]})


class LndREST(_Server):
    """lnd's REST gateway over TLS; the macaroon (hex) must be in `Grpc-Metadata-macaroon`."""

    def __init__(self, macaroon: bytes, channels: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.macaroon_hex = macaroon.hex()
        self.block_height = 871234
        self.channels = (
            channels
            if channels is not None
            else [
                {"chan_id": "1", "active": True, "capacity": "20000000", "local_balance": "9000000"}
            ]
        )
        self.app.router.add_get("/v1/getinfo", self._getinfo)
        self.app.router.add_get("/v1/channels", self._channels)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Grpc-Metadata-macaroon") == self.macaroon_hex

    async def _getinfo(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if not self._authorized(request):
            return web.json_response(
                {"code": 2, "message": "verification failed: signature mismatch"}, status=500
            )
        active = sum(1 for c in self.channels if c.get("active"))
        return web.json_response(
            {
                "alias": "hh-node",
                "identity_pubkey": "02" + "ab" * 32,
                "block_height": self.block_height,
                "synced_to_chain": True,
                "num_active_channels": active,
            }
        )

    async def _channels(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if not self._authorized(request):
            return web.json_response({"code": 2, "message": "permission denied"}, status=500)
        return web.json_response({"channels": self.channels})

    async def start_tls(self, cert: Path, key: Path) -> str:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return await self.start(context)


async def silent_server() -> tuple[asyncio.Server, int]:
    """Accepts connections and never answers (a hung node)."""

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # until the client gives up
        finally:
            writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def resolve_as(monkeypatch: Any, name: str, address: str) -> None:
    """Make `name` resolve to `address` on the running loop (aiohttp's threaded resolver asks
    `loop.getaddrinfo`): a stand-in for DNS that answers what an attacker wants (rebinding)."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, **kwargs: Any) -> Any:
        return await real(address if host == name else host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
