"""HTTP to URLs a member typed, under the address rules of `bot.domain.addresses`.

The caller judges the URL's host as written before asking (`check_url`); the connector built
here judges again every address it is about to connect to, in its socket factory. So a name
that resolves to a forbidden address (a metadata alias, DNS rebinding between registration and
probe, a redirect's new host) is refused at connect time, with nothing between check and use.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohappyeyeballs import AddrInfoType

from bot.domain.addresses import Refusal, address_refusal


class AddressRefused(OSError):
    """The guard refused an address. One fixed message: it never names the address."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(errno.EACCES, "address not allowed")
        self.refusal = refusal


def guarded_socket_factory(*, allow_loopback: bool) -> Callable[[AddrInfoType], socket.socket]:
    def create(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _canonical, sockaddr = addr_info
        try:
            address = ipaddress.ip_address(str(sockaddr[0]))
        except ValueError:
            raise AddressRefused(Refusal.INVALID) from None
        refusal = address_refusal(address, allow_loopback=allow_loopback)
        if refusal is not None:
            raise AddressRefused(refusal)
        return socket.socket(family=family, type=type_, proto=proto)

    return create


def guarded_connector(*, allow_loopback: bool, **kwargs: Any) -> aiohttp.TCPConnector:
    """A TCPConnector that connects only to addresses the rules allow."""
    return aiohttp.TCPConnector(
        socket_factory=guarded_socket_factory(allow_loopback=allow_loopback), **kwargs
    )


def refusal_of(error: BaseException) -> Refusal | None:
    """The guard's refusal behind an aiohttp connection error, if that is what it was."""
    cause = getattr(error, "os_error", None)
    return cause.refusal if isinstance(cause, AddressRefused) else None
