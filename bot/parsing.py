"""Reads YAML and JSON that members and merchants hand us, within bounds: no YAML aliases, a
nesting depth, a number of values and a time budget, so a small hostile file costs little."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

MAX_DEPTH = 20  # an FAQ or catalog needs 4 levels; a persona 2
MAX_NODES = 500_000  # values in one document: bounds the memory its objects take
BUDGET_S = 10.0  # parsing runs off the event loop, but still ends

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CHECK_EVERY = 4096  # events between looks at the clock


class DocumentError(ValueError):
    """The document is malformed or over a bound; `problem` says which, for a person, and
    `line` where (1-based) when known."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line

    def __str__(self) -> str:
        return f"{self.problem} (line {self.line})" if self.line else self.problem


def load_yaml(text: str, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES,
              budget_s: float = BUDGET_S) -> Any:
    """One YAML document as plain data (safe tags only).

    Anchors and aliases are refused before anything is built: expanding them is how a few
    hundred bytes become gigabytes. Depth, size and time are checked on the event stream
    (linear), so the tree is only built once it is known to be small.

    Raises:
        DocumentError: malformed YAML, an anchor or alias, or a bound exceeded.
    """
    deadline = time.monotonic() + budget_s
    depth = nodes = 0
    try:
        for count, event in enumerate(yaml.parse(text, Loader=_Loader)):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise DocumentError("anchors and aliases (&name, *name) are not accepted; "
                                    "write each value out in full", _line(event))
            if isinstance(event, yaml.NodeEvent):
                nodes += 1
                if nodes > max_nodes:
                    raise DocumentError(f"more than {max_nodes:,} values", _line(event))
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    raise DocumentError(f"nested more than {max_depth} levels deep",
                                        _line(event))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if count % _CHECK_EVERY == 0 and time.monotonic() > deadline:
                raise DocumentError(f"took longer than {budget_s:g} s to read")
        return yaml.load(text, Loader=_Loader)  # CSafeLoader / SafeLoader: safe tags only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise DocumentError(exc.problem or "syntax error",
                            mark.line + 1 if mark is not None else None) from None
    except yaml.YAMLError as exc:
        raise DocumentError(str(exc) or "syntax error") from None
    except ValueError as exc:  # a value a constructor refuses (an integer of 5,000 digits)
        if isinstance(exc, DocumentError):
            raise
        raise DocumentError(_unreadable(exc)) from None


def load_json(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """One JSON document; nesting past `max_depth` and unreadable numbers refused.

    Raises:
        DocumentError: malformed JSON or a bound exceeded.
    """
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(exc.msg, exc.lineno) from None
    except RecursionError:
        raise DocumentError(f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise DocumentError(_unreadable(exc)) from None
    if depth_of(tree) > max_depth:
        raise DocumentError(f"nested more than {max_depth} levels deep")
    return tree


def depth_of(tree: Any) -> int:
    """How deeply lists and mappings nest in `tree` (0 for a plain value); no recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _unreadable(exc: ValueError) -> str:
    if "digits" in str(exc):
        return "a number is longer than 4,300 digits"
    return "a value cannot be read"


def _line(event: yaml.Event) -> int | None:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else None
