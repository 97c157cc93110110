"""A loopback SMTP server (aiosmtpd) that keeps what it is sent: the email fallback's inbox.

with smtp_server() as (inbox, port):
    async with running_app(world, tmp_path, extra=smtp_section(port)) as app: ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.harness.world import free_port

FROM = "hh-opsbot <bot@hyperhash.invalid>"
TO = "core-ops@hyperhash.invalid"


class Inbox:
    """aiosmtpd's handler: every envelope received, in order (`.content`, `.rcpt_tos`)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A started SMTP server on 127.0.0.1: its inbox and port; stopped on the way out."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def smtp_section(port: int) -> str:
    """The `[smtp]` section sending to `smtp_server()` on `port`, plain text, to Core Ops."""
    return f"""
[smtp]
host = "127.0.0.1"
port = {port}
starttls = false
from = "{FROM}"
to = ["{TO}"]
timeout = 5
"""
