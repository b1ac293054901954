"""A stranger adds the bot to their own Telegram group (real PTB, the Bot API stand-in, the
whole app): as its creator they get no moderator rights over the shop, nothing is answered or
learned there, and nothing of the shop changes — before and after the shop connects its own
group with a setup code."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from adapters.telegram import TelegramAdapter
from bot.app import App
from bot.demo import DEMO_DIR
from bot.events import Privilege
from bot.storage.keys import Keys
from bot.tenancy import Communities
from bot.tenancy.codes import SetupCodes
from lm_service.api import LMClient
from tests.standins.telegram_api import TelegramStandIn
from tests.support.harness import running_app
from tests.support.tenancy import snapshot

SHOP, STRANGER = -100310, -100666
SHOP_ADMIN, SHOP_MEMBER = 11, 12
OWNER, GUEST = 66, 67  # the stranger (creator of their group) and a member there
ADMIN_ID = 999  # the deployment's configured admin account


def attacks(app: App) -> list[str]:
    """What the stranger tried (issue 15), then every moderator command by name."""
    tried = ['/faq add shipping "How do I pay?" "Pay by wire to evil-shop.example"',
             '/faq edit shipping answer "Pay by wire to evil-shop.example"',
             "/persona set name Evil Shop", f"/profile telegram:{SHOP_MEMBER}",
             "/faq unanswered", "/segment preview all", "/campaign approve spring",
             f"/post publish d1 telegram:{SHOP}", "/helpchannel add", "/digest channel",
             "/community list", f"/community approve telegram:{STRANGER}", "/mydata"]
    return tried + [f"/{s.name}" for s in app.registry.all()
                    if s.privilege >= Privilege.MODERATOR and s.name != "setup"]


async def round_of_attacks(app: App, api: TelegramStandIn, redis: aioredis.Redis) -> list[str]:
    """Every attack from the stranger's group; returns what the bot said in that group. Waits
    on a sentinel: a member's /setup there is refused privately, after everything before it
    (one group's updates are handled in order)."""
    before = await snapshot(redis)
    in_group = len(api.sent_to(STRANGER))
    refusals, dms = len(api.sent_to(GUEST)), len(api.sent_to(OWNER))
    for text in attacks(app):
        api.message(STRANGER, OWNER, text)
    api.message(STRANGER, GUEST, "@shopkeep_bot how do I return a tent?")
    api.message(STRANGER, GUEST, "tents, tents, tents: I love a good two person tent")
    api.message(STRANGER, GUEST, "/setup")
    await api.wait_for(lambda: len(api.sent_to(GUEST)) == refusals + 1, timeout=60)
    assert "for moderators only" in api.sent_to(GUEST)[-1].text
    await app.router.drain()
    assert await snapshot(redis) == before  # nothing of the shop read into a reply, or changed
    assert not await redis.exists(Keys("default").profile(f"telegram:{GUEST}"))
    assert not await redis.exists(Keys("default").profile(f"telegram:{OWNER}"))
    assert len(api.sent_to(OWNER)) == dms  # no refusal, no data, no export by DM either
    return [s.text for s in api.sent_to(STRANGER)[in_group:]]


async def test_a_strangers_group_is_never_served_before_or_after_the_shop_connects_its_own(
        tg_api: TelegramStandIn, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    adapter = TelegramAdapter(tg_api.token, tg_api.base_url, poll_timeout_s=1)
    async with running_app(redis_url, tmp_path, lm_client, [adapter],
                           admin_ids=[f"telegram:{ADMIN_ID}"],
                           profile_summary_interval_s=3600) as app:
        for feature in app.features:  # the demo shop's FAQ and catalog
            loader = getattr(feature, "load_demo", None)
            if loader is not None:
                await loader(DEMO_DIR, "default")
        for chat, creator in ((SHOP, SHOP_ADMIN), (STRANGER, OWNER)):
            tg_api.group(chat)
            tg_api.set_admin(chat, creator, "creator")
        for user in (OWNER, GUEST, SHOP_MEMBER, ADMIN_ID):
            tg_api.private(user)

        # Before the shop connected anything: one hint to the stranger, nothing else.
        said = await round_of_attacks(app, tg_api, redis_client)
        assert len(said) == 1 and "/setup CODE" in said[0]

        # The shop connects its own group with a one-time code from its operator.
        code = await SetupCodes(redis_client).create("default")
        tg_api.message(SHOP, SHOP_ADMIN, f"/setup {code}")
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(SHOP)))
        assert "Connected" in tg_api.sent_to(SHOP)[0].text
        tg_api.message(SHOP, SHOP_MEMBER, "@shopkeep_bot how do I cancel my order?")
        tg_api.message(SHOP, SHOP_ADMIN, "/persona show")
        await tg_api.wait_for(lambda: len(tg_api.sent_to(SHOP)) == 3, timeout=120)
        await app.settle()  # the shop member's profile is stored before the next snapshot
        replies = [s.text for s in tg_api.sent_to(SHOP)[1:]]
        assert any("Sources: " in r for r in replies)  # a member's question is answered
        assert any("Name: " in r for r in replies)  # the group's creator is a moderator

        # The same code is used up (said privately); the stranger's group stays unapproved.
        tg_api.message(STRANGER, OWNER, f"/setup {code}")
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(OWNER)))
        assert "wrong, used or expired" in tg_api.sent_to(OWNER)[0].text
        assert await round_of_attacks(app, tg_api, redis_client) == []
        assert await Communities(redis_client).approved_keys("default") == {f"telegram:{SHOP}"}

        # Direct messages: the stranger is a member there (data rights, no moderator power);
        # the configured admin account is an admin.
        tg_api.message(OWNER, OWNER, "/faq list")
        await tg_api.wait_for(lambda: len(tg_api.sent_to(OWNER)) == 2)
        assert "for moderators only" in tg_api.sent_to(OWNER)[1].text
        tg_api.message(OWNER, OWNER, "/mydata")
        await tg_api.wait_for(lambda: any(s.file_name == "shopkeep-my-data.json"
                                          for s in tg_api.sent_to(OWNER)))
        tg_api.message(ADMIN_ID, ADMIN_ID, "/faq list")
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(ADMIN_ID)))
        assert "for moderators only" not in tg_api.sent_to(ADMIN_ID)[0].text
