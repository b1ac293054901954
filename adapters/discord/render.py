"""`Outbound` → the Discord messages that carry it: 2000-character chunks, a sources line,
product embeds, buttons and files on the last chunk, and a stable nonce per chunk."""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass, field

import discord

from bot.events import Outbound
from bot.ports import split_message

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_BUTTONS = 25  # five rows of five
ACTION_PREFIX = "sk:"  # custom_id of a button whose click is sent back as a command text
MAX_CUSTOM_ID = 100

# Never ping @everyone/@here or roles, and never ping the member a reply answers.
ALLOWED_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=True,
                                           replied_user=False)


@dataclass
class Part:
    """One Discord message of an outbound."""

    content: str
    nonce: str
    embeds: list[discord.Embed] = field(default_factory=list)
    view: discord.ui.View | None = None
    files: list[discord.File] = field(default_factory=list)


def nonce_for(outbound: Outbound, index: int, chunk: int) -> str:
    """At most 25 characters (Discord's limit). A retried send of the same reply or of the
    same idempotent outbound gets the same nonce, so Discord returns the first message
    instead of posting again."""
    if outbound.idempotency_key:
        base = f"key:{outbound.idempotency_key}"
    elif outbound.reply_to:
        base = f"reply:{outbound.reply_to}:{index}"
    else:
        base = f"once:{uuid.uuid4().hex}"
    return hashlib.blake2b(f"{base}:{chunk}".encode(), digest_size=12).hexdigest()[:25]


def text_of(outbound: Outbound) -> str:
    """The message text, its sources line, and buttons that cannot be buttons as text."""
    parts = [outbound.text.strip()]
    sources = outbound.sources_line()
    if sources:
        parts.append(sources)
    textual = [b for b in outbound.buttons if not _buttonable(b.action, b.url)]
    if textual:
        parts.append("\n".join(f"• {b.label}: type {b.action}" for b in textual))
    return "\n\n".join(p for p in parts if p)


def _buttonable(action: str, url: str | None) -> bool:
    return bool(url) or len(ACTION_PREFIX + action) <= MAX_CUSTOM_ID


def embeds_of(outbound: Outbound) -> list[discord.Embed]:
    """Product citations with a link become small embeds the member can click through."""
    return [
        discord.Embed(title=c.title[:256], url=c.url, colour=discord.Colour.teal())
        for c in outbound.citations if c.kind == "product" and c.url
    ][:MAX_EMBEDS]


def view_of(outbound: Outbound) -> discord.ui.View | None:
    buttons = [b for b in outbound.buttons if _buttonable(b.action, b.url)][:MAX_BUTTONS]
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for button in buttons:
        if button.url:
            view.add_item(discord.ui.Button(label=button.label[:80], url=button.url,
                                            style=discord.ButtonStyle.link))
        else:
            view.add_item(discord.ui.Button(label=button.label[:80],
                                            custom_id=ACTION_PREFIX + button.action,
                                            style=discord.ButtonStyle.secondary))
    return view


def render(outbound: Outbound, index: int = 0) -> list[Part]:
    """Split into ≤2000-character messages; extras ride on the last one."""
    chunks = split_message(text_of(outbound), MAX_CONTENT)
    if not chunks:
        chunks = [""] if (outbound.files or embeds_of(outbound)) else []
    parts = [Part(content=c, nonce=nonce_for(outbound, index, i)) for i, c in enumerate(chunks)]
    if parts:
        last = parts[-1]
        last.embeds = embeds_of(outbound)
        last.view = view_of(outbound)
        last.files = [discord.File(io.BytesIO(f.data), filename=f.filename)
                      for f in outbound.files[:10]]
    return parts
