"""Commands every deployment has: /help, /persona, /helpchannel."""

from __future__ import annotations

from bot.commands.registry import Arg, ArgKind, CommandContext, CommandRegistry, CommandSpec
from bot.errors import UserInputError
from bot.events import Privilege
from bot.persona import EDITABLE, load_persona, set_persona_field
from bot.storage.store import Store


class BuiltinCommands:
    def __init__(self, registry: CommandRegistry, store: Store) -> None:
        self.registry = registry
        self.store = store

    def specs(self) -> list[CommandSpec]:
        mod = Privilege.MODERATOR
        return [
            CommandSpec("help", "List the commands you can run, or explain one.", self.help,
                        args=(Arg("command", ArgKind.TEXT, "a command name, e.g. faq add",
                                  required=False),)),
            CommandSpec("persona show", "Show the bot's persona.", self.persona_show,
                        privilege=mod),
            CommandSpec("persona set", "Change one persona field.", self.persona_set,
                        args=(Arg("field", ArgKind.CHOICE, choices=EDITABLE),
                              Arg("value", ArgKind.TEXT, "the new value")),
                        privilege=mod),
            CommandSpec("helpchannel add", "Answer questions in this channel without a mention.",
                        self.helpchannel_add, privilege=mod),
            CommandSpec("helpchannel remove", "Stop answering unmentioned questions here.",
                        self.helpchannel_remove, privilege=mod),
            CommandSpec("helpchannel list", "List the help channels.", self.helpchannel_list,
                        privilege=mod),
        ]

    async def help(self, ctx: CommandContext) -> str:
        wanted = (ctx.args.get("command") or "").strip().lstrip("/").lower()
        visible = self.registry.visible_to(ctx.privilege)
        if wanted:
            matches = [s for s in visible if s.name == wanted or s.words[0] == wanted]
            if not matches:
                raise UserInputError(f"There is no command /{wanted} that you can run. "
                                     "Type /help for the list.")
            lines = []
            for spec in matches:
                lines.append(f"{spec.usage()}\n  {spec.help}")
                lines.extend(f"  • {a.name}: {a.help}" for a in spec.args if a.help)
            return "\n".join(lines)
        lines = ["Commands you can run:"]
        lines += [f"{spec.usage()} — {spec.help}" for spec in visible]
        lines.append("Or just ask me a question about the shop.")
        return "\n".join(lines)

    async def persona_show(self, ctx: CommandContext) -> str:
        return (await load_persona(self.store, ctx.merchant)).describe()

    async def persona_set(self, ctx: CommandContext) -> str:
        value = await set_persona_field(self.store, ctx.merchant, ctx.args["field"],
                                        str(ctx.args["value"]))
        return f"Persona {ctx.args['field']} is now: {value}"

    async def helpchannel_add(self, ctx: CommandContext) -> str:
        channel = self._channel(ctx)
        await self.store.redis.sadd(ctx.keys.help_channels(), channel)
        return "I'll answer questions in this channel, even without a mention."

    async def helpchannel_remove(self, ctx: CommandContext) -> str:
        channel = self._channel(ctx)
        removed = await self.store.redis.srem(ctx.keys.help_channels(), channel)
        return ("I'll only answer here when mentioned." if removed
                else "This channel was not a help channel.")

    async def helpchannel_list(self, ctx: CommandContext) -> str:
        channels = sorted(str(c) for c in await self.store.redis.smembers(ctx.keys.help_channels()))
        return "Help channels: " + (", ".join(channels) if channels else "none yet.")

    @staticmethod
    def _channel(ctx: CommandContext) -> str:
        if ctx.inbound.community is None:
            raise UserInputError("Run this inside the channel you mean, not in a direct message.")
        return ctx.inbound.community.channel_key
