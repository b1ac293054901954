"""Commands declared once — name, typed arguments, minimum privilege, help — and parsed here.

Adapters read the same declarations to publish commands (Discord slash commands, Telegram's
command menu); the router uses them to parse text like `/faq add shipping "How fast?" ...`.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.errors import BadArgument, UnknownCommand
from bot.events import Attachment, Inbound, Outbound, Privilege

if TYPE_CHECKING:
    from bot.storage.keys import Keys


class ArgKind(enum.StrEnum):
    STR = "str"  # one word, or a "quoted phrase"
    TEXT = "text"  # the rest of the line, as typed; must be last
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"
    MEMBER = "member"  # @mention, platform:id, or a bare platform id
    ATTACHMENT = "attachment"  # a file sent with the command


@dataclass(frozen=True)
class Arg:
    name: str
    kind: ArgKind = ArgKind.STR
    help: str = ""
    required: bool = True
    choices: tuple[str, ...] = ()
    default: Any = None

    def usage(self) -> str:
        label = "|".join(self.choices) if self.choices else self.name
        return f"<{label}>" if self.required else f"[{label}]"


@dataclass
class CommandContext:
    """What a handler gets: who asked, where, with which arguments, for which merchant."""

    inbound: Inbound
    merchant: str
    privilege: Privilege
    args: dict[str, Any]
    keys: Keys
    # False only for a `before_approval` command run in a community no merchant approved:
    # then `merchant` and `keys` are the default merchant's and must not be used.
    approved: bool = True

    @property
    def member_key(self) -> str:
        return self.inbound.member.key


CommandResult = Outbound | list[Outbound] | str | None
Handler = Callable[[CommandContext], Awaitable[CommandResult]]


@dataclass(frozen=True)
class CommandSpec:
    """One command. `name` may have two words for a subcommand (`faq add`).

    `private` replies are shown only to the caller; `slow` tells adapters the answer may take
    seconds (Discord defers the interaction at once); `before_approval` lets it run in a
    community no merchant has approved yet (the setup step, nothing else).
    """

    name: str
    help: str
    handler: Handler
    args: tuple[Arg, ...] = ()
    privilege: Privilege = Privilege.MEMBER
    private: bool = False
    slow: bool = False
    examples: tuple[str, ...] = field(default=())
    before_approval: bool = False

    def __post_init__(self) -> None:
        words = self.name.split()
        if not 1 <= len(words) <= 2 or not all(_NAME.match(w) for w in words):
            raise ValueError(f"bad command name {self.name!r}")
        kinds = [a.kind for a in self.args]
        if ArgKind.TEXT in kinds[:-1]:
            raise ValueError(f"{self.name}: a text argument must come last")

    @property
    def words(self) -> list[str]:
        return self.name.split()

    def usage(self) -> str:
        parts = [f"/{self.name}", *(a.usage() for a in self.args if a.kind != ArgKind.ATTACHMENT)]
        if any(a.kind == ArgKind.ATTACHMENT for a in self.args):
            parts.append("(attach the file)")
        return " ".join(parts)


_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TOKEN = re.compile(r"(?<!\s)\s*+(?:\"((?:[^\"\\]|\\.)*)\"|'([^']*)'|(\S+))")
_UNCLOSED = re.compile(r"^\s*[\"']")


class CommandRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, CommandSpec] = {}

    def register(self, spec: CommandSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"command /{spec.name} is registered twice")
        self._specs[spec.name] = spec

    def register_all(self, specs: Iterable[CommandSpec]) -> None:
        for spec in specs:
            self.register(spec)

    def get(self, name: str) -> CommandSpec | None:
        return self._specs.get(name)

    def all(self) -> list[CommandSpec]:
        return sorted(self._specs.values(), key=lambda s: s.name)

    def visible_to(self, privilege: Privilege) -> list[CommandSpec]:
        return [s for s in self.all() if s.privilege <= privilege]

    def groups(self) -> dict[str, list[CommandSpec]]:
        """Top-level name → its commands (one entry for a plain command, several for a group)."""
        out: dict[str, list[CommandSpec]] = {}
        for spec in self.all():
            out.setdefault(spec.words[0], []).append(spec)
        return out

    def parse_text(self, text: str, attachments: tuple[Attachment, ...] = ()) -> tuple[
        CommandSpec, dict[str, Any]
    ]:
        """Parse `/name [sub] args...` into a spec and typed arguments.

        Raises:
            UnknownCommand: no such command (with a suggestion when one is close).
            BadArgument: an argument is missing or of the wrong type; says the usage.
        """
        body = text.strip()
        if not body.startswith("/"):
            raise UnknownCommand("Commands start with '/'. Try /help.")
        head, _, rest = body[1:].partition(" ")
        head = head.split("@", 1)[0].lower()  # Telegram appends @BotName in groups
        spec = None
        sub, _, sub_rest = rest.strip().partition(" ")
        if sub and self.get(f"{head} {sub.lower()}"):
            spec, rest = self.get(f"{head} {sub.lower()}"), sub_rest
        elif self.get(head):
            spec = self.get(head)
        if spec is None:
            raise UnknownCommand(self._unknown_message(head, sub))
        return spec, self._parse_args(spec, rest, attachments)

    def coerce(self, spec: CommandSpec, raw: dict[str, Any],
               attachments: tuple[Attachment, ...] = ()) -> dict[str, Any]:
        """Check and convert arguments a platform delivered already split (slash options)."""
        values: dict[str, Any] = {}
        for arg in spec.args:
            if arg.kind == ArgKind.ATTACHMENT:
                values[arg.name] = _attachment(spec, arg, attachments)
            elif arg.name in raw and raw[arg.name] is not None and raw[arg.name] != "":
                try:
                    values[arg.name] = _convert(spec, arg, raw[arg.name])
                except BadArgument as exc:
                    raise BadArgument(f"{exc.message} Usage: {spec.usage()}") from None
            else:
                values[arg.name] = _missing(spec, arg)
        unknown = set(raw) - {a.name for a in spec.args}
        if unknown:
            raise BadArgument(f"/{spec.name} has no option {sorted(unknown)[0]!r}. "
                              f"Usage: {spec.usage()}")
        return values

    def _parse_args(self, spec: CommandSpec, rest: str,
                    attachments: tuple[Attachment, ...]) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        positional = [a for a in spec.args if a.kind != ArgKind.ATTACHMENT]
        pos = 0
        remaining = rest
        while remaining.strip() and pos < len(positional):
            arg = positional[pos]
            if arg.kind == ArgKind.TEXT:
                raw[arg.name] = _unquote_whole(remaining.strip())
                remaining = ""
                break
            match = _TOKEN.match(remaining)
            if match is None or (match.group(0).strip() == "" and _UNCLOSED.match(remaining)):
                break
            token = next(g for g in match.groups() if g is not None)
            if _UNCLOSED.match(remaining) and match.group(3) is not None:
                raise BadArgument(f"A quote is not closed in: {rest.strip()!r}. "
                                  f"Usage: {spec.usage()}")
            key, eq, value = token.partition("=")
            if eq and match.group(3) is not None and any(a.name == key for a in positional):
                raw[key] = value
            else:
                while pos < len(positional) and positional[pos].name in raw:
                    pos += 1
                if pos >= len(positional):
                    break
                raw[positional[pos].name] = token.replace('\\"', '"')
                pos += 1
            remaining = remaining[match.end():]
        if remaining.strip():
            raise BadArgument(f"Too many arguments for /{spec.name}: {remaining.strip()!r}. "
                              f"Usage: {spec.usage()}")
        return self.coerce(spec, raw, attachments)

    def _unknown_message(self, head: str, sub: str) -> str:
        group = [s for s in self.all() if s.words[0] == head]
        if group:
            subs = ", ".join(s.words[1] for s in group if len(s.words) > 1)
            what = f"'/{head} {sub}'" if sub else f"/{head} on its own"
            return f"I don't know {what}. /{head} takes one of: {subs}."
        import difflib

        close = difflib.get_close_matches(head, list(self.groups()), n=1)
        hint = f" Did you mean /{close[0]}?" if close else ""
        return f"I don't know the command /{head}.{hint} Type /help to see what you can run."


def _unquote_whole(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _missing(spec: CommandSpec, arg: Arg) -> Any:
    if arg.required:
        raise BadArgument(f"/{spec.name} needs {arg.usage()}"
                          f"{' — ' + arg.help if arg.help else ''}. Usage: {spec.usage()}")
    return arg.default


def _attachment(spec: CommandSpec, arg: Arg, attachments: tuple[Attachment, ...]) -> Any:
    if attachments:
        return attachments[0]
    return _missing(spec, arg)


_TRUE = {"yes", "y", "true", "on", "1"}
_FALSE = {"no", "n", "false", "off", "0"}


_MAX_DIGITS = 15  # beyond any count or period a command takes; int() of 5,000 digits fails


def _shown(value: Any) -> str:
    """The value as an error message may quote it: not a member's whole paragraph."""
    text = repr(value)
    return text if len(text) <= 42 else text[:39] + "..."


def _convert(spec: CommandSpec, arg: Arg, value: Any) -> Any:
    bad = f"/{spec.name}: {arg.name} "
    if arg.kind in (ArgKind.STR, ArgKind.TEXT, ArgKind.MEMBER):
        text = str(value).strip()
        if arg.kind == ArgKind.MEMBER:
            text = text.lstrip("@").removeprefix("<@").removesuffix(">").lstrip("!")
        return text
    if arg.kind == ArgKind.INT:
        if isinstance(value, bool):
            raise BadArgument(bad + f"must be a whole number, not {value!r}.")
        text = str(value).strip()
        if len(text.lstrip("+-0")) > _MAX_DIGITS:
            raise BadArgument(bad + f"must be a whole number of at most {_MAX_DIGITS} digits.")
        try:
            return int(text)
        except ValueError:
            raise BadArgument(bad + f"must be a whole number, not {_shown(value)}.") from None
    if arg.kind == ArgKind.FLOAT:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise BadArgument(bad + f"must be a number, not {_shown(value)}.") from None
        if not math.isfinite(number):
            raise BadArgument(bad + f"must be a finite number, not {_shown(value)}.")
        return number
    if arg.kind == ArgKind.BOOL:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise BadArgument(bad + f"must be yes or no, not {value!r}.")
    if arg.kind == ArgKind.CHOICE:
        word = str(value).strip().lower()
        if word not in arg.choices:
            raise BadArgument(bad + f"must be one of {', '.join(arg.choices)}, not {value!r}.")
        return word
    raise BadArgument(bad + "cannot be given as text; attach a file instead.")
