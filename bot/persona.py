"""The merchant's persona: the bot's name, the shop's name, its tone and house rules."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import UserInputError
from bot.parsing import DocumentError, load_yaml
from bot.storage.store import Store

EDITABLE = ("name", "shop_name", "tone", "greeting", "signoff")
MAX_FIELD = 500


@dataclass
class Persona:
    name: str = "Shopkeep"
    shop_name: str = "our shop"
    tone: str = "Friendly, concise and helpful."
    style_rules: list[str] = field(default_factory=list)
    greeting: str = "Hi! Ask me anything about the shop."
    signoff: str = ""

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Persona:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        rules = known.get("style_rules", [])
        if isinstance(rules, str):
            rules = json.loads(rules) if rules.startswith("[") else [rules]
        fields = {k: str(v) for k, v in known.items() if k != "style_rules"}
        return cls(style_rules=[str(r) for r in rules], **fields)

    @classmethod
    def from_yaml(cls, path: Path) -> Persona:
        try:
            data = load_yaml(path.read_text(encoding="utf-8")) or {}
        except DocumentError as exc:
            raise UserInputError(f"{path.name}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise UserInputError(f"{path.name}: a persona file must be a mapping of fields")
        return cls.from_mapping(data)

    def describe(self) -> str:
        rules = "".join(f"\n  • {r}" for r in self.style_rules)
        return (f"Name: {self.name}\nShop: {self.shop_name}\nTone: {self.tone}\n"
                f"Greeting: {self.greeting}\nSign-off: {self.signoff or '(none)'}\n"
                f"Rules:{rules or ' (none)'}")


async def load_persona(store: Store, merchant: str) -> Persona:
    data = await store.redis.hgetall(store.keys(merchant).persona())
    return Persona.from_mapping({str(k): v for k, v in data.items()}) if data else Persona()


async def save_persona(store: Store, merchant: str, persona: Persona) -> None:
    data: dict[Any, Any] = {k: str(v) for k, v in asdict(persona).items()}
    data["style_rules"] = json.dumps(persona.style_rules)
    await store.redis.hset(store.keys(merchant).persona(), mapping=data)


async def set_persona_field(store: Store, merchant: str, name: str, value: str) -> str:
    """Change one persona field (/persona set and the dashboard). One field per write: two
    moderators changing different fields at once both keep theirs.

    Raises:
        UserInputError: an unknown field or a value over 500 characters.
    """
    if name not in EDITABLE:
        raise UserInputError(f"Unknown persona field {name!r}; use one of {', '.join(EDITABLE)}.")
    value = value.strip()
    if len(value) > MAX_FIELD:
        raise UserInputError(f"Keep persona fields under {MAX_FIELD} characters.")
    await store.redis.hset(store.keys(merchant).persona(), name, value)
    return value
