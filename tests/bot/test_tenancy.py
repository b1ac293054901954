"""Only the merchant's own communities: approval by code, by setting, by a moderator and on the
command line; revoking; direct messages; the one hint; a group that changes its id."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.app import App
from bot.errors import ConfigError
from bot.events import (
    CommunityRef,
    Inbound,
    MemberRef,
    MembershipChange,
    Outbound,
    Platform,
    Privilege,
)
from bot.growth import GrowthFeature
from bot.settings import load_settings
from bot.storage.keys import Keys, community_merchant, setup_code
from bot.tenancy import Communities
from bot.tenancy.cli import cmd_communities
from bot.tenancy.codes import SetupCodes, normalise
from lm_service.api import LMClient
from tests.support.harness import running_app
from tests.support.tenancy import approve, snapshot

SHOP, STRANGER = "-100300", "-100666"
QUESTION = "@shopkeep how long does shipping take?"


def said(community: str | None, user: str, text: str, *, role: Privilege = Privilege.MEMBER,
         platform: Platform = Platform.TELEGRAM) -> Inbound:
    """A message as the Telegram adapter delivers it: `role` is the author's platform role in
    that group (creator → OWNER, administrator → MODERATOR)."""
    place = CommunityRef(platform, community, community) if community else None
    return Inbound(platform=platform, member=MemberRef(platform, user, user), text=text,
                   community=place, privilege=role, mentions_bot=text.startswith("@"))


async def ask(app: App, inbound: Inbound) -> list[Outbound]:
    replies = await app.handle(inbound)
    await app.router.drain()
    return replies


@pytest.fixture
async def app(redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
              lm_client: LMClient) -> AsyncIterator[App]:
    async with running_app(redis_url, tmp_path, lm_client, admin_ids=["telegram:999"],
                           profile_summary_interval_s=3600) as started:
        yield started


def cli_args(action: str, *communities: str, **extra: object) -> argparse.Namespace:
    return argparse.Namespace(action=action, community=list(communities), merchant=None,
                              existing=False, minutes=30, **extra)


async def test_an_unapproved_group_gets_nothing_but_the_setup_step(app: App) -> None:
    growth = next(f for f in app.features if isinstance(f, GrowthFeature))
    code = await growth.referrals.code_for("default", "telegram:5")  # a shop member's code
    before = await snapshot(app.store.redis)
    owner = "66"  # the stranger created the group, so Telegram calls them its creator
    attempts = ['/faq add shipping "How fast?" "Pay by wire to evil-shop.example"',
                "/persona set name Evil Shop", "/profile telegram:5", "/faq unanswered",
                "/helpchannel add", "/segment preview all", "/stats", "/community list",
                "/campaign list", "/mydata", "/help"]
    replies = [await ask(app, said(STRANGER, owner, text, role=Privilege.OWNER))
               for text in attempts]
    hints = [r for rs in replies for r in rs]
    assert len(hints) == 1 and "/setup CODE" in hints[0].text  # one hint, to its admin
    assert not await ask(app, said(STRANGER, "67", QUESTION))  # a member asks: silence
    assert not await ask(app, said(STRANGER, "67", "I love tents, tents are great"))
    assert not await ask(app, said(STRANGER, owner, QUESTION, role=Privilege.OWNER))
    await app.membership(MembershipChange(  # a join there, even through a member's link
        Platform.TELEGRAM, MemberRef(Platform.TELEGRAM, "68"),
        CommunityRef(Platform.TELEGRAM, STRANGER, STRANGER), joined=True, invite=f"ref_{code}"))
    await _flush(app)
    assert await snapshot(app.store.redis) == before  # nothing of the merchant read or written
    assert not await app.store.redis.exists(Keys("default").profile("telegram:67"))
    assert not await app.store.redis.exists(Keys("default").referral("telegram:68"))


async def test_a_setup_code_connects_a_group_once_and_bad_codes_are_refused(app: App) -> None:
    codes = SetupCodes(app.store.redis)
    code = await codes.create("default")
    # Only an admin of the group may set it up; a member is refused and the code survives.
    [refused] = await ask(app, said(SHOP, "12", f"/setup {code}"))
    assert "for moderators only" in refused.text
    [wrong] = await ask(app, said(SHOP, "11", "/setup AAAA-BBBB-CCCC", role=Privilege.MODERATOR))
    assert "wrong, used or expired" in wrong.text
    assert await Communities(app.store.redis).owner(f"telegram:{SHOP}") is None

    [done] = await ask(app, said(SHOP, "11", f"/setup {code.lower()}", role=Privilege.MODERATOR))
    assert "Connected" in done.text
    assert await Communities(app.store.redis).owner(f"telegram:{SHOP}") == "default"
    assert await ask(app, said(SHOP, "12", QUESTION))  # served now

    # The same code again, elsewhere: used. An expired one: refused too.
    [used] = await ask(app, said(STRANGER, "66", f"/setup {code}", role=Privilege.OWNER))
    assert "wrong, used or expired" in used.text
    expiring = await codes.create("default", ttl_s=60)
    await app.store.redis.pexpire(setup_code(normalise(expiring)), 50)
    await asyncio.sleep(0.2)
    [expired] = await ask(app, said(STRANGER, "66", f"/setup {expiring}", role=Privilege.OWNER))
    assert "wrong, used or expired" in expired.text
    assert await Communities(app.store.redis).owner(f"telegram:{STRANGER}") is None
    # Guessing is slowed down: after five wrong codes even a good one waits an hour.
    for _ in range(3):
        await ask(app, said(STRANGER, "66", "/setup ZZZZ-ZZZZ-ZZZZ", role=Privilege.OWNER))
    fresh = await codes.create("default")
    [blocked] = await ask(app, said(STRANGER, "66", f"/setup {fresh}", role=Privilege.OWNER))
    assert "Too many wrong setup codes" in blocked.text
    assert await Communities(app.store.redis).owner(f"telegram:{STRANGER}") is None
    # In a connected group /setup changes nothing.
    [again] = await ask(app, said(SHOP, "11", f"/setup {fresh}", role=Privilege.MODERATOR))
    assert "already connected" in again.text


async def test_the_communities_setting_approves_at_start_and_nothing_else(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    async with running_app(redis_url, tmp_path, lm_client,
                           communities=f"telegram:{SHOP}, discord:4242") as app:
        owners = Communities(app.store.redis)
        assert await owners.owner(f"telegram:{SHOP}") == "default"
        assert await owners.owner("discord:4242") == "default"
        assert [a.how for a in await owners.approved("default")] == ["setting", "setting"]
        assert await ask(app, said(SHOP, "12", QUESTION))
        assert not await ask(app, said(STRANGER, "12", QUESTION))
    with pytest.raises(ConfigError, match="SHOPKEEP_COMMUNITIES"):
        load_settings(communities="telegram:shop,discord:1")


async def test_revoking_a_community_stops_serving_it(app: App, capsys: pytest.CaptureFixture[str],
                                                     ) -> None:
    await approve(app.store.redis, f"telegram:{SHOP}")
    assert await ask(app, said(SHOP, "12", QUESTION))
    await cmd_communities(app.settings, cli_args("revoke", f"telegram:{SHOP}"))
    assert f"telegram:{SHOP}: revoked for default" in capsys.readouterr().out
    assert not await ask(app, said(SHOP, "12", QUESTION))
    [hint] = await ask(app, said(SHOP, "11", "/faq list", role=Privilege.MODERATOR))
    assert "/setup CODE" in hint.text  # its admins are told once how to connect it again
    assert not await ask(app, said(SHOP, "11", "/faq list", role=Privilege.MODERATOR))


async def test_direct_messages_serve_members_but_give_moderator_rights_only_to_admins(
        app: App) -> None:
    # A group's creator writing privately is a member here, whatever the adapter says.
    [mine] = await ask(app, said(None, "66", "/mydata", role=Privilege.OWNER))
    assert mine.files and mine.private
    assert await ask(app, said(None, "66", "how long does shipping take?"))  # answered
    [refused] = await ask(app, said(None, "66", "/faq list", role=Privilege.OWNER))
    assert "for moderators only" in refused.text
    [optout] = await ask(app, said(None, "66", "/optout"))
    assert "won't learn" in optout.text
    [listed] = await ask(app, said(None, "999", "/faq list"))  # a configured admin
    assert "for moderators only" not in listed.text


async def test_a_moderator_approves_only_a_community_whose_admin_asked(app: App) -> None:
    await approve(app.store.redis, f"telegram:{SHOP}")
    mod = Privilege.MODERATOR
    [unasked] = await ask(app, said(SHOP, "11", f"/community approve telegram:{STRANGER}",
                                    role=mod))
    assert "has not asked" in unasked.text
    # An admin of the second group asks; the shop's moderator approves it.
    [noted] = await ask(app, said(STRANGER, "66", "/setup", role=Privilege.OWNER))
    assert f"/community approve telegram:{STRANGER}" in noted.text
    [ok] = await ask(app, said(SHOP, "11", f"/community approve telegram:{STRANGER}", role=mod))
    assert "Approved" in ok.text
    assert await ask(app, said(STRANGER, "67", QUESTION))
    [listing] = await ask(app, said(SHOP, "11", "/community list", role=mod))
    assert f"telegram:{SHOP}" in listing.text and "moderator by telegram:11" in listing.text
    # Another merchant's community is not taken over, and a member may not approve.
    await approve(app.store.redis, "telegram:-100777", merchant="othershop")
    await ask(app, said("-100777", "70", "/setup", role=Privilege.OWNER))
    [taken] = await ask(app, said(SHOP, "11", "/community approve telegram:-100777", role=mod))
    assert "another shop" in taken.text
    assert await Communities(app.store.redis).owner("telegram:-100777") == "othershop"
    [member] = await ask(app, said(SHOP, "12", "/community approve telegram:-1"))
    assert "for moderators only" in member.text
    # Revoking from the chat needs more than a moderator: an admin (a Telegram creator).
    [no] = await ask(app, said(SHOP, "11", f"/community revoke telegram:{STRANGER}", role=mod))
    assert "for admins only" in no.text
    [yes] = await ask(app, said(SHOP, "10", f"/community revoke telegram:{STRANGER}",
                                role=Privilege.OWNER))
    assert "Disconnected" in yes.text
    assert not await ask(app, said(STRANGER, "67", QUESTION))


async def test_a_configured_admin_connects_a_group_with_setup_alone(app: App) -> None:
    [done] = await ask(app, said(SHOP, "999", "/setup", role=Privilege.MODERATOR))
    assert "Connected" in done.text
    approval = (await Communities(app.store.redis).approved("default"))[0]
    assert (approval.community, approval.how, approval.by) == (
        f"telegram:{SHOP}", "admin", "telegram:999")


async def test_an_upgrade_lists_communities_holding_data_and_approves_them_in_one_command(
        app: App, capsys: pytest.CaptureFixture[str]) -> None:
    # Before approvals existed every group served the default merchant; its data says where.
    old = CommunityRef(Platform.TELEGRAM, SHOP, SHOP)
    for text in ("we need a light tent for the trip", "which tent is best in rain?"):
        await app.handle(Inbound(platform=Platform.TELEGRAM, member=MemberRef(
            Platform.TELEGRAM, "12"), text=text, community=old, merchant="default"))
    await _flush(app)
    await app.store.redis.sadd(Keys("default").help_channels(), "telegram:-100301:7")
    await app.store.redis.set(Keys("default").token_budget("discord:4242", "2026-12-01"), 10)

    await cmd_communities(app.settings, cli_args("list"))
    listing = capsys.readouterr().out
    assert "none approved yet" in listing
    lines = {line.split(" — ")[0].lstrip("• "): line for line in listing.splitlines()}
    assert "profiles" in lines[f"telegram:{SHOP}"]
    assert "help channels" in lines["telegram:-100301"]
    assert "token budget" in lines["discord:4242"]
    assert "shopkeep communities approve --existing" in listing

    args = cli_args("approve")
    args.existing = True
    await cmd_communities(app.settings, args)
    assert capsys.readouterr().out.count("approved for default") == 3
    assert await Communities(app.store.redis).approved_keys("default") == {
        f"telegram:{SHOP}", "telegram:-100301", "discord:4242"}
    assert await ask(app, said(SHOP, "12", QUESTION))
    await cmd_communities(app.settings, cli_args("list"))
    assert "Holding data, not approved" not in capsys.readouterr().out

    await cmd_communities(app.settings, cli_args("code"))
    code = capsys.readouterr().out.split("Setup code for default: ")[1].split()[0]
    [done] = await ask(app, said(STRANGER, "66", f"/setup {code}", role=Privilege.OWNER))
    assert "Connected" in done.text


async def test_campaign_targets_and_their_errors_name_only_approved_places(app: App) -> None:
    await approve(app.store.redis, f"telegram:{SHOP}")
    keys = Keys("default")
    # Left from before approvals: a stranger's channel among the ones the bot had seen.
    await app.store.redis.sadd(keys.campaign_channels(), f"telegram:{STRANGER}",
                               f"telegram:{SHOP}")
    mod = Privilege.MODERATOR
    [refused] = await ask(app, said(SHOP, "11", f'/campaign create x "every 1d" '
                                    f'telegram:{STRANGER} "Spring tents"', role=mod))
    assert "I don't know the channel" in refused.text
    assert f"telegram:{SHOP}" in refused.text and STRANGER not in refused.text.split(
        "Channels I know there")[1]
    [created] = await ask(app, said(SHOP, "11", '/campaign create x "every 1d" here '
                                    '"Spring tents"', role=mod))
    assert "Campaign x created" in created.text


async def test_a_group_that_becomes_a_supergroup_keeps_its_approval_request_and_hint(
        app: App) -> None:
    tenancy = app.tenancy
    old, new = (CommunityRef(Platform.TELEGRAM, c, c) for c in ("-42", "-100042"))
    await approve(app.store.redis, old.key)
    await tenancy.community_moved(old, new)
    owners = Communities(app.store.redis)
    assert await owners.owner(new.key) == "default" and await owners.owner(old.key) is None
    [approval] = await owners.approved("default")
    assert approval.community == new.key and approval.how == "test"
    assert await ask(app, said("-100042", "12", QUESTION))
    # An unapproved group's pending request and the hint already given follow it too.
    asked, moved = (CommunityRef(Platform.TELEGRAM, c, c) for c in ("-43", "-100043"))
    await ask(app, said("-43", "66", "/setup", role=Privilege.OWNER))
    await ask(app, said("-43", "66", "/faq list", role=Privilege.OWNER))  # the one hint
    await tenancy.community_moved(asked, moved)
    assert await owners.pending(moved.key) is not None and await owners.pending(asked.key) is None
    assert not await ask(app, said("-100043", "66", "/faq list", role=Privilege.OWNER))
    assert not await app.store.redis.exists(community_merchant(moved.key))


async def _flush(app: App) -> None:
    from bot.profiles import ProfilesFeature

    await app.router.drain()
    for feature in app.features:
        if isinstance(feature, ProfilesFeature):
            await feature.flush()


def test_the_command_line_refuses_what_is_not_a_community(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    from bot.cli import main

    monkeypatch.setenv("SHOPKEEP_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("SHOPKEEP_DATA_DIR", str(tmp_path))
    assert main(["communities", "approve", "telegram:shop"]) == 1
    assert "'telegram:shop' is not a community" in capsys.readouterr().err
    assert main(["communities", "approve"]) == 1
    assert "--existing" in capsys.readouterr().err
    assert main(["communities", "code", "--minutes", "0"]) == 1
    assert "between 1 minute" in capsys.readouterr().err
