"""Slash commands through real discord.py: sync from the registry, privilege, deferral."""

from __future__ import annotations

from tests.adapters.conftest_discord import *  # noqa: F403  (the dc_ fixtures)
from tests.adapters.conftest_discord import DiscordRig, long_text


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


async def test_member_is_refused_a_moderator_command_and_a_moderator_runs_it(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    refused = await standin.slash("4", "persona set", {"field": "tone", "value": "pirate"})
    await standin.wait_for(lambda: bool(standin.for_interaction(refused)))
    refusal = standin.for_interaction(refused)[0]
    assert "moderators only" in refusal.content and refusal.ephemeral
    persona_before = await dc_rig.host.redis.get("sk:default:persona")
    assert persona_before is None or "pirate" not in persona_before

    for user, role in (("3", "moderator"), ("2", "admin"), ("1", "owner")):
        iid = await standin.slash(user, "persona set", {"field": "tone", "value": f"{role}ly"})
        await standin.wait_for(lambda iid=iid: bool(standin.for_interaction(iid)))
        assert standin.for_interaction(iid)[0].content == f"Persona tone is now: {role}ly"
    shown = await standin.slash("3", "persona show")
    await standin.wait_for(lambda: bool(standin.for_interaction(shown)))
    assert "ownerly" in standin.for_interaction(shown)[0].content


async def test_helpchannel_marks_the_discord_channel(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    refused = await standin.slash("5", "helpchannel add", channel_id=standin.help)
    done = await standin.slash("3", "helpchannel add", channel_id=standin.help)
    await standin.wait_for(lambda: bool(standin.for_interaction(refused))
                           and bool(standin.for_interaction(done)))
    assert "moderators only" in standin.for_interaction(refused)[0].content
    assert await dc_rig.host.redis.smembers("sk:default:help_channels") == {
        f"discord:{standin.help}"}


async def test_declared_slow_command_is_deferred_at_once_and_completed(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    iid = await standin.slash("4", "report", {"seconds": 1.2})
    await standin.wait_for(lambda: len(standin.for_interaction(iid)) == 2)
    ack, answer = standin.for_interaction(iid)
    created = next(i for i in standin.interactions.values() if i.id == iid).created
    assert ack.callback_type == 5 and ack.at - created < 0.3  # deferred before the work
    assert answer.kind == "followup" and answer.content.startswith("Report ready")
    assert answer.at - created >= 1.2


async def test_answer_slower_than_three_seconds_is_deferred_in_time_then_followed_up(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    iid = await standin.slash("4", "ponder", {"seconds": 3.4})
    await standin.wait_for(lambda: len(standin.for_interaction(iid)) == 2, within=8)
    ack, answer = standin.for_interaction(iid)
    created = next(i for i in standin.interactions.values() if i.id == iid).created
    assert ack.callback_type == 5 and 0.4 <= ack.at - created < 3.0
    assert answer.kind == "followup" and answer.at - created > 3.0
    assert answer.content == "Pondered it: the Trailhead tent."


async def test_quick_answer_is_not_deferred(dc_rig: DiscordRig) -> None:
    iid = await dc_rig.standin.slash("4", "ponder", {"seconds": 0.05})
    await dc_rig.standin.wait_for(lambda: bool(dc_rig.standin.for_interaction(iid)))
    [reply] = dc_rig.standin.for_interaction(iid)
    assert reply.callback_type == 4 and reply.content.startswith("Pondered")


async def test_long_slash_answer_is_one_response_and_two_followups(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    iid = await standin.slash("4", "longtext")
    await standin.wait_for(lambda: len(standin.for_interaction(iid)) == 3)
    parts = standin.for_interaction(iid)
    assert [p.kind for p in parts] == ["response", "followup", "followup"]
    assert all(len(p.content) <= 2000 for p in parts)
    joined = " ".join(p.content for p in parts)
    assert joined.split() == long_text().split()


async def test_products_become_embeds_and_a_button_click_runs_its_action(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    iid = await standin.slash("4", "showcase")
    await standin.wait_for(lambda: bool(standin.for_interaction(iid)))
    [reply] = standin.for_interaction(iid)
    assert "Sources: Trailhead 2P Tent · Returns policy" in reply.content
    assert reply.embeds[0]["title"] == "Trailhead 2P Tent"
    assert reply.embeds[0]["url"] == "https://shop.example/tent-2p"
    buttons = [c for row in reply.components for c in row["components"]]
    action = next(b for b in buttons if b.get("custom_id"))
    link = next(b for b in buttons if b.get("url"))
    assert action["custom_id"] == "sk:/echo more about tents"
    assert link["url"] == "https://shop.example" and link["style"] == 5

    click = await standin.click("5", action["custom_id"], message_id=reply.id)
    await standin.wait_for(lambda: bool(standin.for_interaction(click)))
    assert standin.for_interaction(click)[0].content == "echo: more about tents"
    assert dc_rig.extra.calls == ["showcase", "echo"]


async def test_member_input_error_is_explained_privately(dc_rig: DiscordRig) -> None:
    iid = await dc_rig.standin.slash("4", "help", {"command": "nosuchthing"})
    await dc_rig.standin.wait_for(lambda: bool(dc_rig.standin.for_interaction(iid)))
    [reply] = dc_rig.standin.for_interaction(iid)
    assert reply.ephemeral and "There is no command /nosuchthing" in reply.content


async def test_refusal_after_a_public_deferral_stays_private(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    iid = await standin.slash("4", "audit", {"seconds": 0.1})
    await standin.wait_for(lambda: len(standin.for_interaction(iid)) == 2)
    ack, refusal = standin.for_interaction(iid)
    token = next(t for t, i in standin.interactions.items() if i.id == iid)
    assert ack.callback_type == 5 and not ack.ephemeral
    assert standin.interactions[token].original == "deleted"  # the public placeholder
    assert refusal.ephemeral and "moderators only" in refusal.content
    assert dc_rig.extra.calls == []  # refused before the handler ran

    done = await standin.slash("3", "audit", {"seconds": 0.1})
    await standin.wait_for(lambda: len(standin.for_interaction(done)) == 2)
    answer = standin.for_interaction(done)[1]
    assert not answer.ephemeral and answer.content.startswith("Pondered")
    assert dc_rig.extra.calls == ["ponder"]


async def test_attachment_option_is_downloaded_and_handed_to_the_command(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    synced = {c["name"]: c for c in standin.commands[standin.guild_id]}
    options = {o["name"]: o for o in synced["upload"]["options"]}
    assert options["file"]["type"] == 11 and options["file"]["required"]
    assert options["note"]["type"] == 3 and not options["note"]["required"]
    iid = await standin.slash("4", "upload", {"file": "stock.csv", "note": "weekly"})
    await standin.wait_for(lambda: len(standin.for_interaction(iid)) == 2)
    ack, answer = standin.for_interaction(iid)
    assert ack.callback_type == 5  # acknowledged before the download
    size = len(standin.attachment_bytes("stock.csv"))
    assert answer.content == f"stock.csv: {size} bytes, header 'sku,name', note weekly"


async def test_more_than_25_choices_are_offered_by_autocomplete(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    synced = {c["name"]: c for c in standin.commands[standin.guild_id]}
    [option] = synced["size"]["options"]
    assert option["autocomplete"] is True and not option.get("choices")
    iid = await standin.slash("4", "size", {"size": "us-1"}, focused="size")
    await standin.wait_for(lambda: bool(standin.for_interaction(iid)))
    [answer] = standin.for_interaction(iid)
    assert answer.callback_type == 8
    assert [c["value"] for c in answer.data["choices"]] == [
        "us-10", "us-11", "us-12", "us-13"]

    chosen = await standin.slash("4", "size", {"size": "us-12"})
    await standin.wait_for(lambda: bool(standin.for_interaction(chosen)))
    assert standin.for_interaction(chosen)[0].content == "size us-12"
    wrong = await standin.slash("4", "size", {"size": "xxl"})  # typed past the suggestions
    await standin.wait_for(lambda: bool(standin.for_interaction(wrong)))
    assert "must be one of" in standin.for_interaction(wrong)[0].content
