"""lnd REST: `/v1/getinfo` and `/v1/channels`, macaroon header, TLS certificate pinned.

The pin is the SHA-256 of lnd's own `tls.cert`: aiohttp then accepts exactly that certificate
and nothing else (no CA, no hostname games), which is what a self-signed lnd needs.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import ssl
from pathlib import Path
from typing import Any

import aiohttp

from bot.domain.health import Figure, Target
from bot.integrations.probes.common import Credentials, ProbeFailure, as_int, get_json, join, pick


class LndProbe:
    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._pins: dict[Path, aiohttp.Fingerprint] = {}

    async def macaroon_hex(self) -> str:
        """The macaroon file is read at every probe: a 30-day rotation needs no restart."""
        creds = self._credentials
        if creds.lnd_macaroon_path is not None:
            try:
                raw = await asyncio.to_thread(creds.lnd_macaroon_path.read_bytes)
            except OSError:
                raise ProbeFailure("cannot read the lnd macaroon file") from None
            return binascii.hexlify(raw).decode()
        if creds.lnd_macaroon_hex:
            return creds.lnd_macaroon_hex
        raise ProbeFailure("no lnd macaroon configured")

    async def pin(self) -> Any:
        path = self._credentials.lnd_tls_cert
        if path is None:
            return True  # no pin configured: the system's trust store
        if path not in self._pins:
            try:
                pem = await asyncio.to_thread(path.read_text, encoding="ascii")
                der = ssl.PEM_cert_to_DER_cert(pem)
            except (OSError, ValueError, UnicodeDecodeError):
                raise ProbeFailure("cannot read the pinned lnd TLS certificate") from None
            self._pins[path] = aiohttp.Fingerprint(hashlib.sha256(der).digest())
        return self._pins[path]

    async def probe(self, session: aiohttp.ClientSession, target: Target) -> dict[str, Figure]:
        headers = {"Grpc-Metadata-macaroon": await self.macaroon_hex()}
        pin = await self.pin() if target.endpoint.startswith("https") else True
        info, channels = await asyncio.gather(
            get_json(session, join(target.endpoint, "/v1/getinfo"), headers=headers, ssl=pin),
            get_json(session, join(target.endpoint, "/v1/channels"), headers=headers, ssl=pin),
        )
        if not isinstance(info, dict) or not isinstance(channels, dict):
            raise ProbeFailure("unexpected answer: not a JSON object")
        figures: dict[str, Figure] = {}
        pick(figures, "block_height", info, ("block_height",), int)
        pick(figures, "active_channels", info, ("num_active_channels",), int)
        if isinstance(info.get("synced_to_chain"), bool):
            figures["synced_to_chain"] = info["synced_to_chain"]
        items = channels.get("channels", [])
        if not isinstance(items, list):
            raise ProbeFailure("unexpected answer: channels is not a list")
        capacity = local = 0
        for channel in items:
            if isinstance(channel, dict):
                capacity += as_int(channel.get("capacity"))  # int64 as strings in REST
                local += as_int(channel.get("local_balance"))
        figures["channels"] = len(items)
        figures["capacity_sat"] = capacity
        figures["local_balance_sat"] = local
        return figures
