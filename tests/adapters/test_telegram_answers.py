"""A member's question in a Telegram group answered by the whole app (real model, demo shop)
with its sources, through real PTB and the Bot API stand-in."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from adapters.telegram import TelegramAdapter
from bot.demo import DEMO_DIR
from lm_service.api import LMClient
from tests.standins.telegram_api import TelegramStandIn
from tests.support.harness import running_app

GROUP = -100900
FORUM = -100901


async def test_a_member_asks_in_a_group_and_gets_a_grounded_answer_with_sources(
    tg_api: TelegramStandIn, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
    lm_client: LMClient,
) -> None:
    adapter = TelegramAdapter(tg_api.token, tg_api.base_url, poll_timeout_s=1)
    async with running_app(redis_url, tmp_path, lm_client, [adapter],
                           communities=[f"telegram:{GROUP}", f"telegram:{FORUM}"]) as app:
        for feature in app.features:  # the demo shop's FAQ and catalog
            loader = getattr(feature, "load_demo", None)
            if loader is not None:
                await loader(DEMO_DIR, "default")
        tg_api.group(GROUP)
        tg_api.message(GROUP, 21, "just saying hi to everyone")  # not addressed: no answer
        tg_api.message(GROUP, 21, "@shopkeep_bot how do I cancel my order?", message_id=31)
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)), timeout=120)
        [answer] = tg_api.sent_to(GROUP)
        assert answer.reply_to == 31
        body, _, sources = answer.text.rpartition("\n\nSources: ")
        assert body.strip() and "cancel" in sources.lower()
        assert "<i>Sources: " in answer.raw  # rendered as HTML, escaped

        # In a forum topic the moderators marked as a help channel, questions need no mention.
        tg_api.group(FORUM, forum=True)
        tg_api.set_admin(FORUM, 1, "administrator")
        tg_api.message(FORUM, 1, "/helpchannel add", thread_id=7)
        await tg_api.wait_for(lambda: len(tg_api.sent_to(FORUM)) == 1)
        tg_api.message(FORUM, 22, "Do you sell a two person tent?", thread_id=7)
        tg_api.message(FORUM, 22, "Is anyone going hiking this weekend?", thread_id=8)
        tg_api.message(FORUM, 22, "/help", thread_id=8)  # handled after the chatter before it
        await tg_api.wait_for(lambda: len(tg_api.sent_to(FORUM)) == 3, timeout=120)
        _, reply, help_reply = tg_api.sent_to(FORUM)
        assert reply.thread_id == 7 and "Sources: " in reply.text
        assert help_reply.thread_id == 8 and "/help" in help_reply.text  # chatter: no answer
