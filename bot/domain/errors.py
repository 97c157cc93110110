"""Errors a user can cause. Their `user_message` is safe to show in Discord as it is."""

from __future__ import annotations

from collections.abc import Iterable

from bot.domain.permissions import ACTION_LABELS
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

    def __init__(self, action: str, needed: Iterable[OpsRole], *, label: str | None = None) -> None:
        self.action = action
        self.label = label
        self.needed = tuple(sorted(needed, key=lambda r: r.rank))
        shown = named_action(action, label)
        if self.needed:
            names = " or ".join(role.label for role in self.needed)
            message = f"{shown} needs the {names} role."
        else:
            message = f"{shown} is reserved for the bot owners."
        super().__init__(message)

    def labelled(self, label: str | None) -> PermissionDenied:
        """The same denial, naming the button as the member saw it (`Silence 4 h`)."""
        if not label or label == self.label:
            return self
        return PermissionDenied(self.action, self.needed, label=label)


class NoOpsRole(DomainError):
    """Someone without any ops role tried an ops command or button (a miner's curiosity): told
    where to look instead, and not a strike (strikes protect privileged accounts)."""

    outcome = "denied"

    def __init__(self, denial: PermissionDenied) -> None:
        super().__init__(
            f"{denial.user_message} You hold no ops role: `/status` shows the pool's state, and "
            "`/whoami` what you may use."
        )
        self.denial = denial


def display_action(action: str) -> str:
    """Commands read as `/incident open`; a button as its label (`Expire silence`)."""
    if ":" in action:
        return ACTION_LABELS.get(action, action)
    return f"/{action}"


def named_action(action: str, label: str | None = None) -> str:
    """An action as a refusal names it: `/incident open`, or a button's label in bold."""
    shown = (label or display_action(action)).strip()[:80]
    if ":" in action and not shown.startswith("/"):
        return f"**{shown}**"
    return f"`{shown}`"
