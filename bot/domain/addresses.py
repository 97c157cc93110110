"""Which network addresses the bot may contact at a URL someone typed. Pure: no I/O.

One set of rules for every member-supplied URL (a `/node register` endpoint, an `/upgrade
announce` manifest): loopback, unspecified, link-local, cloud-metadata, multicast and reserved
addresses are refused, in any spelling (`0xa9fea9fe`, `2852039166`, `127.1`, `0177.0.0.1`,
`[::ffff:169.254.169.254]`, `[64:ff9b::a9fe:a9fe]`, `metadata.google.internal`, full-width
digits). Private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) stay allowed: nodes
live there. `allow_loopback` is the lab switch (`[health] allow_loopback`).

The caller checks the URL's host here before asking, and checks every address a name resolves
to with `address_refusal` at connect time (a name may resolve elsewhere tomorrow: DNS rebinding).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from urllib.parse import unquote, urlsplit

from bot.domain.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refusal(enum.StrEnum):
    """Why an address may not be contacted; the value is the short label shown in reasons."""

    LOOPBACK = "loopback"
    UNSPECIFIED = "unspecified"
    LINK_LOCAL = "link-local"
    METADATA = "cloud metadata"
    MULTICAST = "multicast or broadcast"
    RESERVED = "reserved"
    INVALID = "not a valid host"

    @property
    def explained(self) -> str:
        return _EXPLAINED[self]


_EXPLAINED = {
    Refusal.LOOPBACK: "a loopback address (127.0.0.0/8, ::1, localhost)",
    Refusal.UNSPECIFIED: "an unspecified address (0.0.0.0/8, ::)",
    Refusal.LINK_LOCAL: "a link-local address (169.254.0.0/16, fe80::/10)",
    Refusal.METADATA: "a cloud metadata service",
    Refusal.MULTICAST: "a multicast or broadcast address",
    Refusal.RESERVED: "a reserved address",
    Refusal.INVALID: "a host name that is not valid",
}


class ForbiddenAddress(InvalidInput):
    """A URL names (or resolves to) an address the rules refuse."""

    outcome = "forbidden"

    def __init__(self, user_message: str, refusal: Refusal) -> None:
        super().__init__(user_message)
        self.refusal = refusal


METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
    }
)
"""Well-known names of cloud metadata services (their addresses are refused too)."""

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6 (inside fc00::/7, which stays allowed otherwise)
        "100.100.100.200",  # Alibaba Cloud (inside 100.64/10, which stays allowed otherwise)
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)

LOOPBACK_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "loopback"}
)

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
_UNSPECIFIED_V4 = _V4("0.0.0.0/8")
_LOOPBACK_V4 = _V4("127.0.0.0/8")
_LINK_LOCAL_V4 = _V4("169.254.0.0/16")
_MULTICAST_V4 = _V4("224.0.0.0/4")
_RESERVED_V4 = _V4("240.0.0.0/4")
_BROADCAST_V4 = ipaddress.IPv4Address("255.255.255.255")
_LINK_LOCAL_V6 = _V6("fe80::/10")
_SITE_LOCAL_V6 = _V6("fec0::/10")  # deprecated, never routable
_MULTICAST_V6 = _V6("ff00::/8")
_NAT64 = (_V6("64:ff9b::/96"), _V6("64:ff9b:1::/48"))
_COMPATIBLE_V6 = _V6("::/96")  # deprecated IPv4-compatible ::a.b.c.d
_TRANSLATED_V6 = _V6("::ffff:0:0:0/96")  # SIIT ::ffff:0:a.b.c.d

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMBER = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64) or ip in _TRANSLATED_V6:
        return low
    if ip in _COMPATIBLE_V6 and int(ip) > 1:
        return low
    return None


def address_refusal(ip: IPAddress, *, allow_loopback: bool = False) -> Refusal | None:
    """Why the bot may not connect to `ip` (None: it may). Private ranges are allowed."""
    if ip in METADATA_ADDRESSES:
        return Refusal.METADATA
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        if ip == ipaddress.IPv6Address("::"):
            return Refusal.UNSPECIFIED
        if ip == ipaddress.IPv6Address("::1"):
            return None if allow_loopback else Refusal.LOOPBACK
        inner = _embedded_v4(ip)
        if inner is not None:
            return address_refusal(inner, allow_loopback=allow_loopback)
        if ip in _LINK_LOCAL_V6 or ip in _SITE_LOCAL_V6:
            return Refusal.LINK_LOCAL
        if ip in _MULTICAST_V6:
            return Refusal.MULTICAST
        return None
    if ip in _UNSPECIFIED_V4:
        return Refusal.UNSPECIFIED
    if ip in _LOOPBACK_V4:
        return None if allow_loopback else Refusal.LOOPBACK
    if ip in _LINK_LOCAL_V4:
        return Refusal.LINK_LOCAL
    if ip in _MULTICAST_V4:
        return Refusal.MULTICAST
    if ip == _BROADCAST_V4:
        return Refusal.MULTICAST
    if ip in _RESERVED_V4:
        return Refusal.RESERVED
    return None


def _ipv4_number(part: str) -> int | None:
    """One part of a legacy IPv4 spelling: decimal, 0x hex or 0-prefixed octal (inet_aton)."""
    if not _NUMBER.match(part):
        return None
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        if any(c in "89" for c in part):
            raise ValueError("not an octal number")
        return int(part, 8)
    return int(part)


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`host` read the way inet_aton and browsers read it (`127.1`, `0x7f000001`, `017700000001`).

    None when the host does not end in a number (a name); ValueError when it ends in a number
    but is no IPv4 address (`1.2.3.4.5`, `256.1.1.1`): such a host is invalid, not a name.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]
    if _ipv4_number(parts[-1]) is None:
        return None
    if len(parts) > 4:
        raise ValueError("too many parts for an IPv4 address")
    numbers = []
    for part in parts:
        number = _ipv4_number(part)
        if number is None:
            raise ValueError("a name ending in a number is not a host")
        numbers.append(number)
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        raise ValueError("IPv4 part out of range")
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_host(host: str) -> tuple[str | None, IPAddress | None]:
    """(name, None) for a DNS name, (None, ip) for an address in any spelling.

    `host` is a URL's host as written (brackets, percent-escapes, IDNA, a trailing dot allowed).
    ValueError when it is neither a valid name nor an address.
    """
    text = unquote(host).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        return None, ipaddress.IPv6Address(text.split("%", 1)[0])
    if not text.isascii():
        text = text.encode("idna").decode("ascii")  # NFKC: full-width digits become digits
    text = text.lower()
    ip = legacy_ipv4(text)
    if ip is not None:
        return None, ip
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError("not a valid host name")
    return name, None


def host_refusal(host: str, *, allow_loopback: bool = False) -> Refusal | None:
    """Why a URL's host may not be contacted, judged by how it is written (None: it may)."""
    try:
        name, ip = parse_host(host)
    except (ValueError, UnicodeError):
        return Refusal.INVALID
    if ip is not None:
        return address_refusal(ip, allow_loopback=allow_loopback)
    assert name is not None
    if name in METADATA_NAMES:
        return Refusal.METADATA
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return None if allow_loopback else Refusal.LOOPBACK
    return None


def url_host(url: str) -> str:
    """The host of an http(s) URL as written (brackets kept off); ValueError when it has none."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.startswith("["):
        host = netloc[1 : netloc.find("]")] if "]" in netloc else ""
    else:
        host = netloc.partition(":")[0]
    if not host:
        raise ValueError("no host")
    return host


def check_url(url: str, *, allow_loopback: bool = False, what: str = "The URL") -> None:
    """Raise `ForbiddenAddress` when `url`'s host is refused by the rules above."""
    try:
        host = url_host(url)
    except ValueError:
        refusal: Refusal | None = Refusal.INVALID
    else:
        refusal = host_refusal(host, allow_loopback=allow_loopback)
    if refusal is not None:
        raise ForbiddenAddress(
            f"{what} is refused: it names {refusal.explained}. Only routable or private "
            "addresses (10/8, 172.16/12, 192.168/16, fc00::/7) may be used.",
            refusal,
        )
