"""Slash commands through real discord.py: sync from the registry, privilege, deferral."""

from __future__ import annotations

from tests.adapters.conftest_discord import (  # noqa: F401  (fixtures)
    DiscordRig,
    dc_host,
    dc_rig,
    dc_standin,
)


async def test_commands_synced_per_guild_with_moderator_default_permissions(
        dc_rig: DiscordRig) -> None:
    synced = {c["name"]: c for c in dc_rig.standin.commands[dc_rig.standin.guild_id]}
    assert {"help", "persona", "helpchannel", "longtext", "report"} <= set(synced)
    assert int(synced["persona"]["default_member_permissions"]) == 32  # Manage Server
    assert synced["help"]["default_member_permissions"] is None
    subs = {o["name"]: o for o in synced["persona"]["options"]}
    field = subs["set"]["options"][0]
    assert field["name"] == "field" and field["type"] == 3 and field["required"]
    assert [c["value"] for c in field["choices"]] == ["name", "shop_name", "tone", "greeting",
                                                      "signoff"]
    assert {o["name"]: o["type"] for o in synced["report"]["options"]} == {"seconds": 10}


async def test_help_slash_command_answers_the_member(dc_rig: DiscordRig) -> None:
    iid = await dc_rig.standin.slash("4", "help")
    await dc_rig.standin.wait_for(lambda: bool(dc_rig.standin.for_interaction(iid)))
    reply = dc_rig.standin.for_interaction(iid)[0]
    assert reply.callback_type == 4
    assert "/help" in reply.content and "/persona set" not in reply.content
