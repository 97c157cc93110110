"""bitcoind JSON-RPC 1.0: `getblockchaininfo` with user/password or the cookie file."""

from __future__ import annotations

import asyncio

import aiohttp

from bot.domain.health import Figure, Target
from bot.integrations.probes.common import (
    BODY_MAX,
    Credentials,
    ProbeFailure,
    basic_auth,
    check_status,
    parse_json,
    pick,
)


async def authorization(credentials: Credentials) -> str:
    """The cookie file wins (read every time: bitcoind writes a new one at each start)."""
    if credentials.bitcoind_cookie_file is not None:
        try:
            cookie = await asyncio.to_thread(
                credentials.bitcoind_cookie_file.read_text, encoding="utf-8"
            )
        except (OSError, UnicodeDecodeError):
            raise ProbeFailure("cannot read the bitcoind cookie file") from None
        user, sep, password = cookie.strip().partition(":")
        if not sep:
            raise ProbeFailure("the bitcoind cookie file is not user:password")
        return basic_auth(user, password)
    if credentials.bitcoind_user is None or credentials.bitcoind_password is None:
        raise ProbeFailure("no bitcoind credentials configured")
    return basic_auth(credentials.bitcoind_user, credentials.bitcoind_password)


async def probe_bitcoind(
    session: aiohttp.ClientSession, target: Target, credentials: Credentials
) -> dict[str, Figure]:
    headers = {"Authorization": await authorization(credentials)}
    payload = {"jsonrpc": "1.0", "id": "hh-opsbot", "method": "getblockchaininfo", "params": []}
    async with session.post(
        target.endpoint, json=payload, headers=headers, allow_redirects=False
    ) as resp:
        body = await resp.content.read(BODY_MAX + 1)
        status = resp.status
    if 300 <= status < 400:
        check_status(status)
    if status == 401:
        raise ProbeFailure("authentication refused (HTTP 401)")
    if status == 403:
        raise ProbeFailure("RPC forbidden (HTTP 403): check rpcallowip")
    # bitcoind answers RPC errors with HTTP 500/404 and a JSON body: read the error object.
    data = parse_json(body)
    if not isinstance(data, dict) or "result" not in data or "error" not in data:
        raise ProbeFailure(f"unexpected answer: not a JSON-RPC reply (HTTP {status})")
    error = data.get("error")
    if error is not None:
        if isinstance(error, dict):
            code, message = error.get("code"), str(error.get("message", ""))[:100]
            raise ProbeFailure(f"RPC error {code}: {message}")
        raise ProbeFailure("RPC error")
    result = data["result"]
    if not isinstance(result, dict):
        raise ProbeFailure("unexpected answer: getblockchaininfo result is not an object")
    figures: dict[str, Figure] = {}
    pick(figures, "block_height", result, ("blocks",), int)
    pick(figures, "headers", result, ("headers",), int)
    pick(figures, "chain", result, ("chain",), str)
    pick(figures, "verification_progress", result, ("verificationprogress",), float)
    if isinstance(result.get("initialblockdownload"), bool):
        figures["initial_block_download"] = result["initialblockdownload"]
    if "block_height" not in figures:
        raise ProbeFailure("unexpected answer: no block count")
    return figures
