"""The growth commands: /start, /invite, /leaderboard, /referrals export, /link, /stats,
/faq gaps, /faq approve, /digest channel and /digest preview."""

from __future__ import annotations

import time

from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.errors import UserInputError
from bot.events import Outbound, OutboundFile, Privilege
from bot.growth.analytics import format_report
from bot.growth.digest import build_digest
from bot.growth.referrals import invite_id, invite_text, parse_start_payload
from bot.growth.services import Growth

_JOIN_REPLIES = {
    "attributed": "Welcome! You joined through a friend's invite — say hi and ask me anything "
                  "about the shop.",
    "self": "That is your own invite code — share it with friends instead.",
    "already_member": "Welcome back! Invite codes only count for new members.",
    "already_attributed": "Welcome back! You were already counted as someone's invite.",
    "unknown_code": "Welcome! That invite code is not one I know, but you're very welcome.",
}


class GrowthCommands:
    def __init__(self, growth: Growth) -> None:
        self.growth = growth

    def specs(self) -> list[CommandSpec]:
        mod = Privilege.MODERATOR
        return [
            CommandSpec("start", "Say hello; a referral link's code is counted here.",
                        self.start, args=(Arg("payload", ArgKind.TEXT, "ref_<code> from an "
                                              "invite link", required=False),)),
            CommandSpec("invite", "Get your personal invite link for friends.", self.invite,
                        private=True),
            CommandSpec("leaderboard", "Top referrers this month or of all time.",
                        self.leaderboard,
                        args=(Arg("period", ArgKind.CHOICE, "month or all", required=False,
                                  choices=("month", "all"), default="month"),)),
            CommandSpec("referrals export", "Every referral as a CSV file.", self.export,
                        privilege=mod, private=True),
            CommandSpec("link", "Link your Discord and Telegram accounts: run /link on one, "
                        "then /link CODE on the other.", self.link, private=True,
                        args=(Arg("code", ArgKind.STR, "the code from your other account",
                                  required=False),)),
            CommandSpec("stats", "Community analytics per platform and combined.", self.stats,
                        privilege=mod, args=(Arg("days", ArgKind.INT, "period in days (1-60)",
                                                 required=False, default=7),)),
            CommandSpec("faq gaps", "Questions I could not answer, grouped, with drafted "
                        "answers.", self.faq_gaps, privilege=mod, slow=True),
            CommandSpec("faq approve", "Add a gap to the FAQ (with your answer, or the draft).",
                        self.faq_approve, privilege=mod,
                        args=(Arg("gap", ArgKind.STR, "the gap id from /faq gaps"),
                              Arg("answer", ArgKind.TEXT, "your answer (default: the draft)",
                                  required=False))),
            CommandSpec("digest channel", "Post the weekly digest in this channel.",
                        self.digest_channel, privilege=mod),
            CommandSpec("digest preview", "Show this week's digest so far.", self.digest_preview,
                        privilege=mod, private=True, slow=True),
        ]

    async def start(self, ctx: CommandContext) -> str:
        code = parse_start_payload(ctx.args.get("payload"))
        if code is None:
            return "Hi! I'm the shop's assistant — ask me anything, or type /help."
        outcome = await self.growth.member_joined(ctx.merchant, ctx.member_key, code,
                                                  ctx.inbound.sent_at)
        return _JOIN_REPLIES[outcome.status]

    async def invite(self, ctx: CommandContext) -> str:
        code = await self.growth.referrals.code_for(ctx.merchant, ctx.member_key,
                                                    ctx.inbound.member.display_name)
        community = ctx.inbound.community
        if community is not None:
            link = await self.growth.core.outbox.create_invite(community, f"ref_{code}")
            if link:
                await self.growth.referrals.register_invite(
                    ctx.merchant, community.platform.value, invite_id(link), ctx.member_key)
                return (f"Your personal invite link: {link}\nFriends who join through it are "
                        "counted as yours once they have stayed a while and joined the "
                        "conversation.")
        settings = self.growth.settings
        return invite_text(ctx.inbound.platform.value, code, settings.referral_telegram_bot,
                           settings.referral_discord_invite)

    async def leaderboard(self, ctx: CommandContext) -> str:
        period = ctx.args.get("period") or "month"
        rows = await self.growth.referrals.leaderboard(ctx.merchant, time.time(), period)
        heading = "this month" if period == "month" else "of all time"
        if not rows:
            return f"No referrals credited {heading} yet — /invite gets you a link."
        lines = [f"Top referrers {heading}:"]
        lines += [f"{n}. {name} — {count}" for n, (_, name, count) in enumerate(rows, start=1)]
        return "\n".join(lines)

    async def export(self, ctx: CommandContext) -> Outbound:
        data = await self.growth.referrals.export_csv(ctx.merchant, time.time())
        rows = data.count("\n") - 1
        return Outbound(text=f"{rows} referral(s) attached.", private=True,
                        files=(OutboundFile("referrals.csv", data.encode(), "text/csv"),))

    async def link(self, ctx: CommandContext) -> str:
        code = (ctx.args.get("code") or "").strip()
        linking = self.growth.linking
        if not code:
            issued = await linking.issue(ctx.merchant, ctx.member_key)
            minutes = max(1, self.growth.settings.link_code_ttl_s // 60)
            return (f"Your link code is {issued}. Within {minutes} minute(s), send "
                    f"/link {issued} to me from your other account. It works once.")
        result = await linking.redeem(ctx.merchant, ctx.member_key, code)
        for account in result.accounts:
            if account != result.person:
                await self.growth.referrals.merge_referrer(ctx.merchant, result.person, account)
        return ("Linked! These accounts are now one member with one profile: "
                + ", ".join(result.accounts) + ".")

    async def stats(self, ctx: CommandContext) -> str:
        days = int(ctx.args.get("days") or 7)
        if not 1 <= days <= 60:
            raise UserInputError("/stats covers 1 to 60 days, e.g. /stats 30.")
        return format_report(await self.growth.stats(ctx.merchant, days))

    async def faq_gaps(self, ctx: CommandContext) -> str:
        gaps = await self.growth.gaps.find(ctx.merchant)
        if not gaps:
            return "No unanswered questions right now — nothing to add to the FAQ."
        lines = ["Questions I could not answer, most asked first:"]
        for gap in gaps:
            also = f" Also asked as: {'; '.join(gap.questions[1:3])}." if len(
                gap.questions) > 1 else ""
            lines.append(f"[{gap.id}] \"{gap.question}\" — asked {gap.asked}x by "
                         f"{gap.askers} member(s).{also}")
            if gap.draft:
                lines.append(f"   Draft: {gap.draft}")
        lines.append("Approve with /faq approve <id> [your answer]; without an answer the "
                     "draft is used.")
        return "\n".join(lines)

    async def faq_approve(self, ctx: CommandContext) -> str:
        entry = await self.growth.gaps.approve(ctx.merchant, str(ctx.args["gap"]),
                                               ctx.args.get("answer"))
        return (f"Added to the FAQ as '{entry.id}': {entry.question}"
                + (f" (with {len(entry.alternates)} other wording(s))"
                   if entry.alternates else "") + ".")

    async def digest_channel(self, ctx: CommandContext) -> str:
        community = ctx.inbound.community
        if community is None:
            raise UserInputError("Run /digest channel inside the moderators' channel.")
        await self.growth.core.store.redis.hset(ctx.keys.digest_channel(), mapping={
            "platform": community.platform.value, "channel_id": community.channel_id,
            "thread_id": community.thread_id or "",
        })
        settings = self.growth.settings
        return (f"The weekly digest will be posted here every {settings.digest_weekday} at "
                f"{settings.digest_hour:02d}:00 ({settings.timezone}).")

    async def digest_preview(self, ctx: CommandContext) -> Outbound:
        week = self.growth.calendar.week(time.time())
        text, png = await build_digest(self.growth, ctx.merchant, week)
        return Outbound(text=text, private=True,
                        files=(OutboundFile(f"digest-{week}.png", png, "image/png"),))
