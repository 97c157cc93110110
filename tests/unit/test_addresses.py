"""The address rules for member-supplied URLs: every spelling of a forbidden address is refused,
private ranges stay allowed, loopback only with the lab switch."""

from __future__ import annotations

import ipaddress

import pytest

from bot.domain.addresses import (
    ForbiddenAddress,
    Refusal,
    address_refusal,
    check_url,
    host_refusal,
    legacy_ipv4,
    parse_host,
)


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://127.0.0.1:8442", Refusal.LOOPBACK),
        ("http://127.1", Refusal.LOOPBACK),
        ("http://2130706433/", Refusal.LOOPBACK),
        ("http://0x7f000001/", Refusal.LOOPBACK),
        ("http://0177.0.0.1/", Refusal.LOOPBACK),
        ("http://localhost:8442", Refusal.LOOPBACK),
        ("http://LOCALHOST./", Refusal.LOOPBACK),
        ("http://node.localhost/", Refusal.LOOPBACK),
        ("http://[::1]:8442", Refusal.LOOPBACK),
        ("http://[::ffff:127.0.0.1]/", Refusal.LOOPBACK),
        ("http://0.0.0.0:8442", Refusal.UNSPECIFIED),
        ("http://0/", Refusal.UNSPECIFIED),
        ("http://[::]/", Refusal.UNSPECIFIED),
        ("http://169.254.169.254/latest/meta-data", Refusal.METADATA),
        ("http://0xa9fea9fe/", Refusal.METADATA),
        ("http://0xA9FEA9FE/", Refusal.METADATA),
        ("http://2852039166/", Refusal.METADATA),
        ("http://169.254.43518/", Refusal.METADATA),
        ("http://0251.0376.0251.0376/", Refusal.METADATA),
        ("http://[::ffff:169.254.169.254]/", Refusal.METADATA),
        ("http://[::ffff:a9fe:a9fe]/", Refusal.METADATA),
        ("http://[64:ff9b::a9fe:a9fe]/", Refusal.METADATA),
        ("http://[2002:a9fe:a9fe::1]/", Refusal.METADATA),
        ("http://[fd00:ec2::254]/", Refusal.METADATA),
        ("http://100.100.100.200/", Refusal.METADATA),
        ("http://metadata.google.internal/computeMetadata/v1/", Refusal.METADATA),
        ("http://METADATA.GOOGLE.INTERNAL./", Refusal.METADATA),
        ("http://%31%36%39.254.169.254/", Refusal.METADATA),
        ("http://\uff11\uff16\uff19.254.169.254/", Refusal.METADATA),  # full-width digits
        ("http://169.254.1.1:8442", Refusal.LINK_LOCAL),
        ("http://[fe80::1]/", Refusal.LINK_LOCAL),
        ("http://[fe80::1%25eth0]/", Refusal.LINK_LOCAL),
        ("http://[febf::1]/", Refusal.LINK_LOCAL),
        ("http://224.0.0.1/", Refusal.MULTICAST),
        ("http://255.255.255.255/", Refusal.MULTICAST),
        ("http://[ff02::1]/", Refusal.MULTICAST),
        ("http://240.0.0.1/", Refusal.RESERVED),
        ("http://1.2.3.4.5/", Refusal.INVALID),
        ("http://256.1.1.1/", Refusal.INVALID),
        ("http://node.123/", Refusal.INVALID),
        ("http://09.1.1.1/", Refusal.INVALID),
        ("http://bad_name.example/", Refusal.INVALID),
        ("http:///nohost", Refusal.INVALID),
    ],
)
def test_forbidden_in_any_spelling(url: str, refusal: Refusal) -> None:
    with pytest.raises(ForbiddenAddress) as caught:
        check_url(url, what="The endpoint")
    assert caught.value.refusal is refusal
    assert caught.value.user_message.startswith("The endpoint is refused: it names ")


@pytest.mark.parametrize(
    "url",
    [
        "https://node7.example:8442",
        "http://10.1.2.3:8442",
        "http://172.16.0.9:8442",
        "http://192.168.1.20:8442",
        "http://100.64.0.7:8442",  # carrier-grade NAT: nodes behind it are fine
        "http://[fd12:3456::7]:8442",
        "http://[2001:db8::7]:8442",
        "http://8.8.8.8/",
        "https://xn--bcher-kva.example/",
        "https://b\u00fccher.example/",
        "http://metadata.example/",  # only the well-known names are names of metadata services
    ],
)
def test_routable_and_private_addresses_are_allowed(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "http://0x7f.1/"]
)
def test_loopback_only_with_the_lab_switch(url: str) -> None:
    with pytest.raises(ForbiddenAddress):
        check_url(url)
    check_url(url, allow_loopback=True)


def test_the_lab_switch_allows_nothing_else() -> None:
    for host in ("169.254.169.254", "0.0.0.0", "[fe80::1]", "metadata.google.internal"):
        assert host_refusal(host, allow_loopback=True) is not None, host


def test_resolved_addresses_are_judged_alike() -> None:
    """What a name resolves to is checked with the same rules (DNS rebinding)."""
    ip = ipaddress.ip_address
    assert address_refusal(ip("127.0.0.53")) is Refusal.LOOPBACK
    assert address_refusal(ip("127.0.0.53"), allow_loopback=True) is None
    assert address_refusal(ip("::ffff:169.254.169.254")) is Refusal.METADATA
    assert address_refusal(ip("10.0.0.1")) is None
    assert address_refusal(ip("fe80::1%2")) is Refusal.LINK_LOCAL


def test_legacy_ipv4_reads_like_inet_aton() -> None:
    assert str(legacy_ipv4("127.1")) == "127.0.0.1"
    assert str(legacy_ipv4("10.0x10.1")) == "10.16.0.1"
    assert legacy_ipv4("node7.example") is None
    assert parse_host("Node7.Example.") == ("node7.example", None)
