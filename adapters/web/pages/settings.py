"""Persona and the settings a moderator may change, tickets, and the audit log."""

from __future__ import annotations

from typing import cast

from starlette.responses import Response

from adapters.web.context import Ctx, page
from bot.persona import EDITABLE, MAX_FIELD, load_persona, set_persona_field

LABELS = {"name": "Bot's name", "shop_name": "Shop's name", "tone": "Tone",
          "greeting": "Greeting", "signoff": "Sign-off"}


@page
async def persona(ctx: Ctx) -> Response:
    store = ctx.web.app.store
    current = await load_persona(store, ctx.merchant)
    if ctx.request.method == "POST":
        changed = []
        for name in EDITABLE:  # field by field, as /persona set does
            value = ctx.field(name)
            if value != str(getattr(current, name)):
                await set_persona_field(store, ctx.merchant, name, value)
                await ctx.record("persona.set", f"{name}: {value[:200]}")
                changed.append(LABELS[name].lower())
        return ctx.redirect("/persona", f"Saved: {', '.join(changed)}." if changed
                            else "Nothing changed.")
    keys = store.keys(ctx.merchant)
    redis = store.redis
    async with redis.pipeline(transaction=False) as pipe:
        pipe.smembers(keys.help_channels())
        pipe.hgetall(keys.digest_channel())
        pipe.smembers(keys.communities())
        help_channels, digest, communities = await pipe.execute()
    digest = cast(dict[str, str], digest)
    return ctx.render(
        "persona.html", active_nav="persona", persona=current, fields=EDITABLE, labels=LABELS,
        max_field=MAX_FIELD, help_channels=sorted(help_channels),
        digest_channel=(f"{digest['platform']}:{digest['channel_id']}" if digest
                        else ctx.web.app.settings.digest_channel),
        communities=sorted(communities))


@page
async def tickets(ctx: Ctx) -> Response:
    """Hand-off to people is being built beside this (issue 19): once `bot.handoff` exists,
    its tickets are listed here from its store, like the other sections call their feature."""
    return ctx.render("tickets.html", active_nav="tickets")


@page
async def audit(ctx: Ctx) -> Response:
    entries = await ctx.web.audit.latest(ctx.merchant, 200)
    return ctx.render("audit.html", active_nav="audit", entries=entries)
