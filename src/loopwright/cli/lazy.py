"""Commands that load on first use: ``loopwright status`` neither imports the other command
modules (nor what they import) nor has Typer convert their functions into Click commands.

``--help`` and shell completion ask for every command, so they load them all, in the order
they are listed: the lazy commands first, then the eager ones, then the lazy sub-apps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from importlib import import_module
from typing import ClassVar

import typer
from typer import _click
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_group_from_info


class LazyCommands(MutableMapping[str, _click.Command]):
    """A group's commands by name; the lazy ones are built by ``load(name)`` when first read."""

    def __init__(
        self, order: list[str], ready: dict[str, _click.Command], load: Callable[[str], _click.Command]
    ):
        self._order = order
        self._ready = ready
        self._load = load

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self._ready:
            if name not in self._order:
                raise KeyError(name)
            self._ready[name] = self._load(name)
        return self._ready[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._ready[name] = command
        if name not in self._order:
            self._order.append(name)

    def __delitem__(self, name: str) -> None:
        self._order.remove(name)
        self._ready.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._order

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)


class LazyGroup(TyperGroup):
    """A Typer group whose :attr:`COMMANDS` (functions) and :attr:`GROUPS` (Typer sub-apps),
    each ``"module:attribute"`` by name, are imported and converted only when asked for: the
    same Click command ``app.command(name)`` or ``app.add_typer(sub_app, name=name)`` makes."""

    COMMANDS: ClassVar[Mapping[str, str]] = {}  # listed before the eagerly registered commands
    GROUPS: ClassVar[Mapping[str, str]] = {}  # listed after them
    pretty_exceptions_short = True  # as the root Typer's (``typer.Typer`` default)

    def __init__(self, *, commands: dict[str, _click.Command] | None = None, **attrs: object) -> None:
        super().__init__(**attrs)  # type: ignore[arg-type]
        eager = dict(commands or {})
        order = [*self.COMMANDS, *(n for n in eager if n not in self.COMMANDS), *self.GROUPS]
        self.commands = LazyCommands(order, eager, self._build)

    def _build(self, name: str) -> _click.Command:
        target = self.COMMANDS.get(name) or self.GROUPS[name]
        module, _, attribute = target.partition(":")
        found = getattr(import_module(module), attribute)
        scratch = typer.Typer()
        if name in self.GROUPS:
            scratch.add_typer(found, name=name)
            return get_group_from_info(
                scratch.registered_groups[0],
                pretty_exceptions_short=self.pretty_exceptions_short,
                rich_markup_mode=self.rich_markup_mode,
                suggest_commands=self.suggest_commands,
            )
        scratch.command(name)(found)
        return get_command_from_info(
            scratch.registered_commands[0],
            pretty_exceptions_short=self.pretty_exceptions_short,
            rich_markup_mode=self.rich_markup_mode,
        )
