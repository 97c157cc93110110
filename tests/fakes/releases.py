"""A loopback file server for release manifests and their `.minisig` (127.0.0.1 only)."""

from __future__ import annotations

import json
from typing import Any, Self

from aiohttp import web

from tests.fakes.minisign_tool import KeyPair
from tests.fakes.network import _Server


def manifest(version: str = "1.4.0", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": version,
        "released_at": "2026-11-27T12:00:00Z",
        "channel": "stable",
        "components": [
            {
                "name": "hh-node-agent",
                "version": version,
                "url": f"https://releases.hyperhash.invalid/hh-node-agent-{version}.tar.gz",
                "sha256": "ab" * 32,
            },
            {
                "name": "hh-core",
                "version": version,
                "url": f"https://releases.hyperhash.invalid/hh-core-{version}.tar.gz",
                "sha256": "cd" * 32,
            },
        ],
        "notes": f"## {version}\n- faster template refresh\n- @everyone must not ping",
    }
    body.update(overrides)
    return body


def release_comment(body: dict[str, Any] | bytes, name: str = "manifest.json") -> str:
    """A trusted comment as a release is signed (`minisign -t`): it names the version."""
    version = body.get("version") if isinstance(body, dict) else None
    return f"file:{name} version:{version}" if version else f"hh release {name}"


class ReleaseFiles(_Server):
    """GET /<name> answers the bytes stored under that name; 404 otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}
        self.app.router.add_get("/{name:.+}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = self.files.get(request.match_info["name"])
        if body is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=body, content_type="application/octet-stream")

    def publish(
        self,
        keys: KeyPair,
        name: str,
        body: dict[str, Any] | bytes,
        *,
        comment: str | None = None,
        legacy: bool = False,
    ) -> str:
        """Store `name` and `name.minisig` signed by the real minisign; returns the URL. The
        trusted comment names the manifest's version unless `comment` says otherwise."""
        data = body if isinstance(body, bytes) else json.dumps(body, indent=2).encode()
        self.files[name] = data
        self.files[f"{name}.minisig"] = keys.sign(
            data, comment=comment or release_comment(body, name), legacy=legacy
        )
        return f"{self.url}/{name}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
