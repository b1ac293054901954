"""`/setup` in a new community and the moderators' `/community ...`: how a merchant connects
its groups and servers from the chat."""

from __future__ import annotations

import time

from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.errors import MissingPermission, UserInputError
from bot.events import Platform, Privilege
from bot.tenancy.codes import SetupCodes
from bot.tenancy.communities import Approval, parse_community
from bot.tenancy.gate import Tenancy

MAX_WRONG_CODES = 5  # per community per hour: a 12-character code is not guessed in 5 tries

CONNECTED = ("Connected! I now answer questions here for the shop, and this community's admins "
             "can run the moderator commands (/help lists them).")


class TenancyCommands:
    def __init__(self, tenancy: Tenancy) -> None:
        self.tenancy = tenancy

    def specs(self) -> list[CommandSpec]:
        mod = Privilege.MODERATOR
        return [
            CommandSpec("setup", "Connect this group or server to the shop (its admins only).",
                        self.setup, before_approval=True, privilege=mod,
                        args=(Arg("code", ArgKind.STR, "the setup code the shop gave you",
                                  required=False),),
                        examples=("/setup K7QM-2XPD-9HRT",)),
            CommandSpec("community approve", "Connect a community whose admin asked with /setup.",
                        self.approve, privilege=mod, private=True,
                        args=(Arg("community", ArgKind.STR,
                                  "telegram:<chat id> or discord:<server id>, as /setup said"),)),
            CommandSpec("community list", "The communities connected to the shop.", self.list,
                        privilege=mod, private=True),
            CommandSpec("community revoke", "Disconnect a community: I stop serving it.",
                        self.revoke, privilege=Privilege.ADMIN, private=True,
                        args=(Arg("community", ArgKind.STR,
                                  "telegram:<chat id> or discord:<server id>"),)),
        ]

    async def setup(self, ctx: CommandContext) -> str:
        """Run by an admin of the new community: with a code, connect it to the code's
        merchant; without one, note the request for a moderator's `/community approve`."""
        inbound = ctx.inbound
        community = inbound.community
        if community is None or inbound.platform == Platform.CONSOLE:
            raise UserInputError("Run /setup inside the group or server you want to connect, "
                                 "as one of its admins.")
        communities = self.tenancy.communities
        if ctx.approved:
            return "This community is already connected to the shop."
        key = community.key
        code = str(ctx.args.get("code") or "").strip()
        if not code:
            if self.tenancy.is_admin(inbound.member.key):
                # The deployment's own admin account, and an admin here too: no code needed.
                await communities.approve(self.tenancy.default_merchant, key, "admin",
                                          inbound.member.key)
                return CONNECTED
            await communities.request(key, inbound.member.key)
            return (f"Noted. To connect this community, a moderator of the shop runs "
                    f"/community approve {key} in one of the shop's communities — or an admin "
                    "here runs /setup CODE with a code from `shopkeep communities code`.")
        if await communities.wrong_codes(key) >= MAX_WRONG_CODES:
            raise MissingPermission("Too many wrong setup codes here. Wait an hour, then try "
                                    "again with a new code from the shop.")
        merchant = await SetupCodes(self.tenancy.store.redis).redeem(code)
        if merchant is None:
            await communities.note_wrong_code(key)
            raise UserInputError("That setup code is wrong, used or expired. Ask the shop for a "
                                 "new one (`shopkeep communities code`).")
        await communities.approve(merchant, key, "code", inbound.member.key)
        return CONNECTED

    async def approve(self, ctx: CommandContext) -> str:
        """Only a community whose own admin asked (`/setup`) in the last week, that no other
        merchant holds, and only for the caller's own merchant: a moderator cannot enlist a
        community behind its admins' backs, nor take one from another shop."""
        key = parse_community(ctx.args["community"])
        communities = self.tenancy.communities
        owner = await communities.owner(key)
        if owner == ctx.merchant:
            return f"{key} is already connected."
        if owner is not None:
            raise UserInputError(f"{key} is connected to another shop; it cannot be approved "
                                 "here.")
        if await communities.pending(key) is None:
            raise UserInputError(f"{key} has not asked to be connected. An admin there sends "
                                 "/setup first; I keep the request for a week.")
        await communities.approve(ctx.merchant, key, "moderator", ctx.member_key)
        return f"Approved: I now serve {key}, and its admins are moderators of the shop there."

    async def list(self, ctx: CommandContext) -> str:
        approved = await self.tenancy.communities.approved(ctx.merchant)
        if not approved:
            return "No community is connected yet."
        return "Connected communities:\n" + "\n".join(describe(a) for a in approved)

    async def revoke(self, ctx: CommandContext) -> str:
        key = parse_community(ctx.args["community"])
        if not await self.tenancy.communities.revoke(ctx.merchant, key):
            raise UserInputError(f"{key} is not connected to the shop. /community list shows "
                                 "the ones that are.")
        return f"Disconnected {key}: I no longer answer or take commands there."


def describe(approval: Approval) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(approval.at)) if approval.at else "?"
    by = f" by {approval.by}" if approval.by else ""
    return f"• {approval.community} — approved ({approval.how}{by}, {when})"
