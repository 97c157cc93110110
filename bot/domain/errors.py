"""Errors a user can cause. Their `user_message` is safe to show in Discord as it is."""

from __future__ import annotations

from collections.abc import Iterable

from bot.domain.roles import OpsRole


class DomainError(Exception):
    """A rule said no. The message is for the person who asked, never a traceback."""

    outcome = "rejected"

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class NotFound(DomainError):
    outcome = "not_found"


class InvalidInput(DomainError):
    outcome = "invalid"


class Unavailable(DomainError):
    """Another system the action needs (Alertmanager, GitHub) did not answer or refused."""

    outcome = "unavailable"


class PermissionDenied(DomainError):
    """The actor holds none of the roles an action needs."""

    outcome = "denied"

    def __init__(self, action: str, needed: Iterable[OpsRole]) -> None:
        self.action = action
        self.needed = tuple(sorted(needed, key=lambda r: r.rank))
        if self.needed:
            names = " or ".join(role.label for role in self.needed)
            message = f"`{display_action(action)}` needs the {names} role."
        else:
            message = f"`{display_action(action)}` is reserved for the bot owners."
        super().__init__(message)


def display_action(action: str) -> str:
    """Commands read as `/incident open`; button actions as they are."""
    return action if ":" in action else f"/{action}"
