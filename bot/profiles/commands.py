"""Member commands: /recommend, /profile, /mydata, /forgetme, /optout, /optin, /segment preview."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.errors import MissingPermission, UserInputError
from bot.events import Button, Citation, Outbound, OutboundFile, Privilege
from bot.profiles.model import Profile

if TYPE_CHECKING:
    from bot.profiles.feature import ProfilesFeature

CONFIRM_WINDOW_S = 600
_PREVIEW = 10


class ProfileCommands:
    def __init__(self, feature: ProfilesFeature) -> None:
        self.feature = feature

    def specs(self) -> list[CommandSpec]:
        mod = Privilege.MODERATOR
        return [
            CommandSpec("recommend", "Products picked for you, from what you've talked about.",
                        self.recommend, slow=True,
                        args=(Arg("what", ArgKind.TEXT, "what you're looking for",
                                  required=False),),
                        examples=("/recommend a warm sleeping bag",)),
            CommandSpec("profile", "What I've learned about your interests (moderators: "
                        "anyone's).", self.profile, private=True,
                        args=(Arg("member", ArgKind.MEMBER, "a member (moderators only)",
                                  required=False),)),
            CommandSpec("mydata", "Everything I store about you, as a JSON file, privately.",
                        self.mydata, private=True),
            CommandSpec("forgetme", "Erase everything I store about you (asks to confirm).",
                        self.forgetme, private=True,
                        args=(Arg("confirm", ArgKind.CHOICE, "type confirm to erase",
                                  required=False, choices=("confirm",)),)),
            CommandSpec("optout", "Stop me learning from your messages.", self.optout,
                        private=True),
            CommandSpec("optin", "Let me learn your interests again.", self.optin,
                        private=True),
            CommandSpec("segment preview", "Who an audience expression reaches, and how many.",
                        self.segment_preview, privilege=mod, private=True,
                        args=(Arg("audience", ArgKind.TEXT,
                                  "e.g. interest:tents>0.3 active:30d platform:telegram"),)),
        ]

    async def recommend(self, ctx: CommandContext) -> Outbound:
        recs = await self.feature.recommend(ctx.merchant, ctx.member_key, ctx.args.get("what"),
                                            limit=3)
        lines = ["Picked for you:"]
        for number, rec in enumerate(recs, start=1):
            lines.append(f"{number}. {rec.name} — {rec.reason}")
            if rec.url:
                lines.append(f"   {rec.url}")
        return Outbound(text="\n".join(lines),
                        citations=tuple(Citation("product", r.sku, r.name, r.url) for r in recs))

    async def profile(self, ctx: CommandContext) -> str:
        target = ctx.member_key
        if ctx.args.get("member"):
            target = _member_key(ctx, str(ctx.args["member"]))
            if target != ctx.member_key and ctx.privilege < Privilege.MODERATOR:
                raise MissingPermission("Only moderators can see another member's profile. "
                                        "/profile on its own shows yours.")
        profile = await self.feature.profile(ctx.merchant,
                                             await self.feature.person(ctx.merchant, target))
        you = target == ctx.member_key
        if profile is None:
            return ("I haven't learned anything about you yet." if you
                    else f"I have no profile for {target}.")
        opted_out = await self.feature.is_opted_out(ctx.merchant, target)
        return describe(profile, you=you, opted_out=opted_out)

    async def mydata(self, ctx: CommandContext) -> Outbound:
        export = await self.feature.export(ctx.merchant, ctx.member_key)
        data = json.dumps(export, ensure_ascii=False, indent=2).encode()
        return Outbound(
            text="Here is everything I store about you. /forgetme erases it.",
            files=(OutboundFile("shopkeep-my-data.json", data, "application/json"),),
            private=True,
        )

    async def forgetme(self, ctx: CommandContext) -> Outbound:
        redis = self.feature.store.redis
        pending = ctx.keys.forget_pending(ctx.member_key)
        if ctx.args.get("confirm") != "confirm":
            await redis.set(pending, str(int(time.time())), ex=CONFIRM_WINDOW_S)
            return Outbound(
                text="This erases your interest profile, our conversation memory and your "
                     "questions in my logs; referral records keep only an anonymous id. It "
                     "cannot be undone. Confirm within 10 minutes with /forgetme confirm.",
                buttons=(Button("Yes, erase everything", "/forgetme confirm"),),
                private=True,
            )
        if not await redis.exists(pending):
            raise UserInputError("Run /forgetme first; then confirm within 10 minutes with "
                                 "/forgetme confirm.")
        failed = await self.feature.forget(ctx.merchant, ctx.member_key)
        text = ("Done: I've erased everything I stored about you. I'll start learning again "
                "if you keep chatting — /optout stops that.")
        if failed:
            text += " Part of it could not be erased right now; the team has been told."
        return Outbound(text=text, private=True)

    async def optout(self, ctx: CommandContext) -> str:
        await self.feature.set_opt_out(ctx.merchant, ctx.member_key, True)
        return ("Done: I won't learn from your messages any more. What I learned before stays "
                "until you run /forgetme; /optin turns learning back on.")

    async def optin(self, ctx: CommandContext) -> str:
        await self.feature.set_opt_out(ctx.merchant, ctx.member_key, False)
        return "Done: I'll learn your interests from your messages again. /optout stops it."

    async def segment_preview(self, ctx: CommandContext) -> str:
        expr = str(ctx.args["audience"])
        members = await self.feature.members_matching(ctx.merchant, expr)
        if not members:
            return f"No member matches `{expr}` yet."
        shown = ", ".join(members[:_PREVIEW])
        more = f" and {len(members) - _PREVIEW} more" if len(members) > _PREVIEW else ""
        return f"{len(members)} member(s) match `{expr}`: {shown}{more}."


def describe(profile: Profile, *, you: bool, opted_out: bool = False) -> str:
    """A profile as a member can read it."""
    who = "you" if you else profile.member
    lines = [f"What I know about {who}:"]
    if profile.summary:
        lines.append(f"• In short: {profile.summary}")
    interests = profile.top_interests(6)
    if interests:
        lines.append("• Interests: " + ", ".join(f"{n} ({s:.0%})" for n, s in interests))
    else:
        lines.append("• No product interests yet.")
    exported: dict[str, Any] = profile.export()
    lines.append(f"• {profile.messages} messages since {exported['first_seen'] or '?'}, "
                 f"last on {exported['last_seen'] or '?'}; platforms: "
                 f"{', '.join(sorted(profile.platforms)) or '-'}")
    if profile.bought:
        lines.append("• Said they bought: " + ", ".join(sorted(profile.bought)))
    if opted_out:
        lines.append("• Learning is switched off (/optin to resume).")
    if you:
        lines.append("/mydata sends you all of it; /forgetme erases it.")
    return "\n".join(lines)


def _member_key(ctx: CommandContext, raw: str) -> str:
    raw = raw.strip()
    if not raw:
        raise UserInputError("Name the member as @mention or platform:id.")
    if ":" in raw:
        return raw
    return f"{ctx.inbound.platform.value}:{raw}"
