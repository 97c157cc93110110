"""Email through SMTP (manual §5: email is the fallback for Core Ops when Discord fails).

An outbox handler for the `email` kind: `{to, subject, body}`. Network trouble and 4xx answers
are retried by the worker; 5xx answers (the server refused for good) fail the item.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib

from bot.config import SmtpSettings
from bot.domain.outbox import OutboxItem, PermanentFailure, RetryLater

log = logging.getLogger(__name__)


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def build(self, to: list[str], subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.from_
        message["To"] = ", ".join(to)
        message["Subject"] = " ".join(subject.split())[:200]
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="hh-opsbot")
        message.set_content(body)
        return message

    async def send(self, to: list[str], subject: str, body: str) -> None:
        s = self.settings
        password = s.password.get_secret_value() if s.password else None
        await aiosmtplib.send(
            self.build(to, subject, body),
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=password,
            start_tls=s.starttls and not s.use_tls,
            use_tls=s.use_tls,
            timeout=s.timeout,
        )

    async def send_item(self, item: OutboxItem) -> Mapping[str, Any]:
        payload = item.payload
        to = [str(a) for a in payload.get("to") or self.settings.to]
        try:
            await self.send(to, str(payload["subject"]), str(payload["body"]))
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentFailure(f"SMTP {exc.code}: {exc.message[:200]}") from exc
            raise RetryLater(f"SMTP {exc.code}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise RetryLater(f"SMTP: {type(exc).__name__}") from exc
        log.info("emailed %s: %s", ", ".join(to), payload.get("subject"))
        return {"emailed": to}
