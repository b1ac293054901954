"""Members: the list (newest activity first, a page at a time), one member's profile, and the
same data rights as /mydata and /forgetme (the profiles feature's `export` and `forget`)."""

from __future__ import annotations

import json
from typing import cast

from starlette.responses import Response

from adapters.web.context import Ctx, page
from bot.errors import UserInputError
from bot.profiles import ProfilesFeature
from bot.profiles.commands import describe
from bot.profiles.erase import pseudonym
from bot.profiles.model import Profile
from bot.storage.keys import Keys

PER_PAGE = 50


@page
async def member_list(ctx: Ctx) -> Response:
    wanted = ctx.request.query_params.get("q", "").strip()
    if wanted:
        return ctx.redirect(f"/members/{wanted}")
    try:
        number = max(1, int(ctx.request.query_params.get("page", "1")))
    except ValueError:
        number = 1
    redis, keys = ctx.web.app.store.redis, Keys(ctx.merchant)
    start = (number - 1) * PER_PAGE
    # One round trip for the page's index slice, one pipelined read for its profiles:
    # the page costs the same with 100 members or 100,000.
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.profile_index())
        pipe.zrevrange(keys.profile_index(), start, start + PER_PAGE - 1)
        total, members = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.hmget(keys.profile(str(member)), "meta", "aff")
        fields = cast(list[list[str | None]], await pipe.execute())
    rows = []
    for member, (meta, aff) in zip(members, fields, strict=True):
        if meta is None:
            continue
        profile = Profile.from_hash(str(member), {"meta": meta, "aff": aff or "{}"})
        rows.append((profile, profile.export(), profile.top_interests(3)))
    pages = max(1, -(-int(total) // PER_PAGE))
    return ctx.render("members.html", active_nav="members", rows=rows, total=int(total),
                      page=number, pages=pages)


@page
async def member_page(ctx: Ctx) -> Response:
    profiles = ctx.web.app.feature(ProfilesFeature)
    member = ctx.request.path_params["member"]
    person = await profiles.person(ctx.merchant, member)
    profile = await profiles.profile(ctx.merchant, person)
    if profile is None:
        return ctx.render("message.html", 404, title="No such member",
                          message=f"This shop has no profile for {member}.")
    opted_out = await profiles.is_opted_out(ctx.merchant, member)
    return ctx.render("member.html", active_nav="members", member=member, profile=profile,
                      exported=profile.export(), summary=describe(profile, you=False,
                                                                  opted_out=opted_out),
                      interests=profile.top_interests(8), opted_out=opted_out)


@page
async def member_export(ctx: Ctx) -> Response:
    """Everything stored about the member: the very file /mydata sends them."""
    member = ctx.request.path_params["member"]
    export = await ctx.web.app.feature(ProfilesFeature).export(ctx.merchant, member)
    await ctx.record("member.export", member)
    name = member.replace(":", "-")
    return Response(json.dumps(export, ensure_ascii=False, indent=2),
                    media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}.json"'})


@page
async def member_erase(ctx: Ctx) -> Response:
    """Erase as /forgetme does. The audit log names the pseudonym, not the member: an
    erasure must not leave the member's id behind in the record of it."""
    member = ctx.request.path_params["member"]
    if ctx.field("confirm") != member:
        raise UserInputError(f"Type the member's id ({member}) to confirm the erasure.")
    failed = await ctx.web.app.feature(ProfilesFeature).forget(ctx.merchant, member)
    await ctx.record("member.erase", pseudonym(ctx.merchant, member)
                     + (f" (could not erase: {', '.join(failed)})" if failed else ""))
    message = "Erased everything stored about that member."
    if failed:
        message += " Part of it could not be erased right now; it is logged for the team."
    return ctx.redirect("/members", message, error=bool(failed))
