"""ONE base for persistent buttons and select menus: the custom_id is derived from the action.

A component acts on one object, and its custom_id says which: `hh:<area>:<verb>:<id>` (then,
for a few, what the press chooses: `hh:alerts:silence:12:4h`). `<area>:<verb>` is the action of
the permission table. A class names its action, and everything follows from it: the template
discord.py matches on every press (after a restart too: the bot re-registers its classes at
start), the check (gate: role, then lockout), the error policy, and the audit of a press that
ended well (unless its use case audited it). A subclass writes only `run`:

    class ApproveGrantButton(PersistentButton, action="access:approve"):
        async def run(self, interaction: discord.Interaction) -> None: ...

    ApproveGrantButton.build(grant.id, label="Approve", style=discord.ButtonStyle.success)

A class may instead give its own template (it must start `hh:<area>:<verb>:`); the action is
then read from it. `OpsView` is kept for short-lived, in-memory views (the /health pager): same
check, policy and audit, but not persistent. `OpsModal` is the form a button opens (its press
writes nothing, `opens_form`): its submit passes the same check, policy and audit.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import discord

from bot.discord.gate import Gate, action_of
from bot.discord.policy import checked, handle_interaction_error

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

ID = r"(?P<id>[0-9]{1,19})"
"""The object id a custom_id carries (a Discord snowflake or a row id)."""
NEVER = r"(?!)"
"""The template of an abstract base (an area's shared `run`): it matches no custom_id."""
PREFIX = re.compile(r"hh:(?P<area>[a-z_]+):(?P<verb>[a-z_]+):")

ItemT = TypeVar("ItemT", bound=discord.ui.Item[Any])


def template_for(action: str, suffix: str = "") -> str:
    """`hh:<area>:<verb>:<id>` and what follows it (a regular expression)."""
    area, verb = action.split(":")
    return f"hh:{area}:{verb}:{ID}{suffix}"


def action_of_template(template: str) -> str:
    found = PREFIX.match(template)
    if found is None:
        raise TypeError(f"a persistent component's template starts hh:<area>:<verb>: ({template})")
    return f"{found['area']}:{found['verb']}"


def gate_of(interaction: discord.Interaction) -> Gate:
    """The gate of the client that received the interaction."""
    gate = getattr(interaction.client, "gate", None)
    if not isinstance(gate, Gate):
        raise RuntimeError("persistent components need a client with a gate (OpsBot)")
    return gate


def ops_bot(interaction: discord.Interaction) -> OpsBot:
    """The bot, typed: what a component's `run` uses to reach the services."""
    return interaction.client  # type: ignore[return-value]


class PersistentItem(discord.ui.DynamicItem[ItemT], template=NEVER):
    """The one base; `PersistentButton` and `PersistentSelect` are its two variants."""

    action: ClassVar[str] = ""
    """`area:verb`, as in the permission table (bot/domain/permissions.py)."""
    opens_form: ClassVar[bool] = False
    """The press only opens a form (an `OpsModal`): it changes nothing, so a press that ends
    well writes no audit row; the form's submit runs the use case, which writes the one row."""

    def __init_subclass__(
        cls,
        *,
        action: str | None = None,
        template: str | None = None,
        suffix: str = "",
        **kwargs: Any,
    ) -> None:
        if template is not None:
            derived = action_of_template(template)
            if action is not None and action != derived:
                raise TypeError(f"{cls.__name__}: action {action} but template {template}")
            action = derived
        elif action is not None:
            template = template_for(action, suffix)
        else:
            template = NEVER
        super().__init_subclass__(template=template, **kwargs)
        if action is not None:
            cls.action = action

    def __init__(self, item: ItemT, *, row: int | None = None) -> None:
        super().__init__(item, row=row)
        match = self.template.fullmatch(self.custom_id)
        if match is None:
            raise ValueError(f"custom_id {self.custom_id!r} does not match {self.template.pattern}")
        self.key: dict[str, str] = {k: v for k, v in match.groupdict().items() if v is not None}
        """What the custom_id carries (`id`, and any further group of the template)."""

    @classmethod
    def custom_id_for(cls, object_id: int, suffix: str = "") -> str:
        area, verb = cls.action.split(":")
        return f"hh:{area}:{verb}:{object_id}{suffix}"

    @property
    def object_id(self) -> int:
        """The id of the object the component acts on."""
        return int(self.key["id"])

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        """A press, after a restart too: the pressed component itself, as discord.py rebuilt
        it from the message. A class with more in its constructor rebuilds itself."""
        return cls(item)  # type: ignore[arg-type]

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await checked(gate_of(interaction), interaction, self.action)

    async def callback(self, interaction: discord.Interaction) -> None:
        """`run` under the error policy; counted and audited when it ends well."""
        gate = gate_of(interaction)
        try:
            await self.run(interaction)
        except Exception as error:
            await handle_interaction_error(gate, interaction, error)
            return
        await gate.succeeded(
            interaction, self.action, target=self.key.get("id"), audit=not self.opens_form
        )

    async def run(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class PersistentButton(PersistentItem[discord.ui.Button[Any]]):
    """A persistent, checked, audited button."""

    @classmethod
    def build(
        cls,
        object_id: int,
        *,
        label: str,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        disabled: bool = False,
        row: int | None = None,
        suffix: str = "",
    ) -> Self:
        return cls(
            discord.ui.Button(
                label=label[:80],
                style=style,
                custom_id=cls.custom_id_for(object_id, suffix),
                disabled=disabled,
            ),
            row=row,
        )


class PersistentSelect(PersistentItem[discord.ui.Select[Any]]):
    """A persistent, checked, audited select menu (the chosen values are in `interaction.data`)."""


class OpsView(discord.ui.View):
    """A short-lived view kept in memory (the /health pager): not persistent, but checked,
    answered and audited like the persistent components.

    Each item's callback is wrapped so that a press that ends well is counted and audited like
    a command (unless the handler's use case audited it, inside its own transaction).
    """

    def __init__(self, bot: OpsBot, *, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout)
        self.gate = bot.gate
        for item in self.children:
            self._wrap(item)

    def add_item(self, item: discord.ui.Item[Any]) -> Self:
        self._wrap(item)
        return super().add_item(item)

    def _wrap(self, item: discord.ui.Item[Any]) -> None:
        if getattr(item, "_hh_wrapped", False):
            return
        callback = item.callback

        async def audited(interaction: discord.Interaction) -> None:
            await callback(interaction)
            await self.gate.succeeded(interaction, action_of(interaction))

        item.callback = audited  # type: ignore[method-assign]
        item._hh_wrapped = True  # type: ignore[attr-defined]

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await checked(self.gate, interaction, action_of(interaction))

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any], /
    ) -> None:
        await handle_interaction_error(self.gate, interaction, error)


class OpsModal(discord.ui.Modal):
    """A form a persistent button opens (`opens_form = True`): short-lived, in memory.

    Its custom_id is `hh:<area>:<verb>:<id>:<nonce>` (the nonce keeps two members' forms apart),
    so its action is the button's: the submit passes the same check (role, then lockout: time
    has passed since the press), the one error policy, and is counted and audited once (by the
    use case `submit` calls, inside its own transaction). A subclass writes only `submit`.
    """

    def __init__(
        self, action: str, object_id: int, nonce: int, *, title: str, timeout: float = 900
    ) -> None:
        area, verb = action.split(":")
        super().__init__(
            title=title[:45], timeout=timeout, custom_id=f"hh:{area}:{verb}:{object_id}:{nonce}"
        )
        self.action = action
        self.object_id = object_id

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await checked(gate_of(interaction), interaction, self.action)

    async def on_submit(self, interaction: discord.Interaction, /) -> None:
        await self.submit(interaction)
        await gate_of(interaction).succeeded(interaction, self.action, target=str(self.object_id))

    async def on_error(  # type: ignore[override]  # Modal narrows BaseView's
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await handle_interaction_error(gate_of(interaction), interaction, error)

    async def submit(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError
