"""A console conversation through the whole core: commands, privileges, helpful errors."""

from __future__ import annotations

from pathlib import Path

from adapters.console import ConsoleAdapter
from bot.events import Privilege
from lm_service.api import LMClient
from tests.support.harness import running_app


async def test_member_is_refused_a_moderator_command_and_a_moderator_runs_it(
    redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient
) -> None:
    console = ConsoleAdapter(user="alice", interactive=False)
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console]):
        [refusal] = await console.say("/persona set name Ranger")
        assert "for moderators only" in refusal.text and refusal.private
        [shown] = await console.say("/persona show", role=Privilege.MODERATOR)
        assert "Name: Shopkeep" in shown.text

        [done] = await console.say("/persona set name Ranger", role=Privilege.MODERATOR)
        assert "Ranger" in done.text
        [shown] = await console.say("/persona show", role=Privilege.MODERATOR)
        assert "Name: Ranger" in shown.text


async def test_help_lists_only_what_the_caller_may_run(
    redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient
) -> None:
    console = ConsoleAdapter(interactive=False)
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console]):
        [member_help] = await console.say("/help")
        [mod_help] = await console.say("/help", role=Privilege.MODERATOR)
    assert "/help" in member_help.text and "/persona set" not in member_help.text
    assert "/persona set <name|shop_name|tone|greeting|signoff> <value>" in mod_help.text


async def test_unknown_and_malformed_commands_get_helpful_errors(
    redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient
) -> None:
    console = ConsoleAdapter(interactive=False, role=Privilege.MODERATOR)
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console]):
        [unknown] = await console.say("/hepl")
        [bad_field] = await console.say("/persona set colour blue")
        [missing] = await console.say("/persona set name")
        [shown] = await console.say("/persona show")
    assert "I don't know the command /hepl. Did you mean /help?" in unknown.text
    assert "must be one of name, shop_name" in bad_field.text
    assert "needs <value>" in missing.text and "Usage: /persona set" in missing.text
    assert "Name: Shopkeep" in shown.text  # nothing changed by the failed attempts


async def test_storage_outage_is_said_plainly(
    tmp_path: Path, lm_client: LMClient
) -> None:
    from tests.support.redis_server import RedisServer

    server = RedisServer()
    server.start()
    console = ConsoleAdapter(interactive=False, role=Privilege.MODERATOR)
    try:
        async with running_app(server.url, tmp_path, lm_client, adapters=[console]):
            server.kill()
            [reply] = await console.say("/persona show")
            assert reply.text == "I can't reach my memory right now — please try again in a minute."
            server.start()
            [reply] = await console.say("/persona show")
            assert "Name: Shopkeep" in reply.text
    finally:
        server.stop()


async def test_two_moderators_editing_different_persona_fields_both_keep_theirs(
    redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient
) -> None:
    import asyncio

    console = ConsoleAdapter(interactive=False, role=Privilege.MODERATOR)
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console]):
        await asyncio.gather(console.say("/persona set name Ranger", user="mod1"),
                             console.say("/persona set tone Warm and brief.", user="mod2"))
        [shown] = await console.say("/persona show")
    assert "Name: Ranger" in shown.text and "Tone: Warm and brief." in shown.text
