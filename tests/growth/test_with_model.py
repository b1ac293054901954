"""Growth with the real models: paraphrased gaps cluster together, an approved gap becomes an
FAQ answer, and two whole apps on one Redis post a week's digest once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from adapters.console import ConsoleAdapter
from bot.events import Privilege
from bot.growth import run_weekly_digest
from bot.growth.gaps import FaqGaps, read_unanswered
from bot.knowledge.store import KnowledgeStore
from bot.storage.keys import Keys
from lm_service.api import LMClient
from tests.support.harness import running_app

GIFT = ["Do you sell gift cards?", "can I buy a gift card for my brother",
        "gift vouchers available?", "Is there a gift certificate I could purchase?"]
SUNDAY = ["Are you open on Sundays?", "what are your opening hours on sunday",
          "is the store open sunday"]
MARS = ["Can you ship to Mars?", "interplanetary shipping??"]
OTHERS = ["Do you offer student discounts?", "which tent is best for a family of five"]


async def test_paraphrases_of_one_question_form_one_gap(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    async with running_app(redis_url, tmp_path, lm_client) as app:
        keys = Keys("default")
        questions = [*GIFT, *SUNDAY, *MARS, *OTHERS]
        # Interleaved as members would ask them over a week.
        order = [q for group in zip(GIFT, SUNDAY + MARS[:1], OTHERS + MARS[1:] + [""],
                                    strict=False) for q in group if q]
        assert sorted(order) == sorted(questions)
        from bot.replies.unanswered import UnansweredLog

        log = UnansweredLog(app.store.redis)
        for n, question in enumerate(order):
            await log.add(keys, question, f"telegram:{n % 5}", "telegram:c1")
        gaps_api = FaqGaps(app.store.redis, app.lm, KnowledgeStore(app.store, app.lm),
                           app.settings.gap_similarity, app.settings.gap_max_questions)
        gaps = await gaps_api.find("default", top=10, drafts=1)
        groups = [sorted(g.questions) for g in gaps]
        assert groups[0] == sorted(GIFT) and gaps[0].asked == 4
        assert groups[1] == sorted(SUNDAY)
        assert sorted(MARS) in groups
        assert all(len(g) == 1 for g in groups if g[0] in OTHERS)
        assert gaps[0].draft  # the model drafted an answer for the most asked gap
        assert len(await read_unanswered(app.store.redis, keys, 100)) == len(questions)


async def test_an_approved_gap_answers_the_next_member(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    console = ConsoleAdapter(interactive=False)
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console]) as app:
        for n, question in enumerate(GIFT[:3]):
            (reply,) = await console.say(question, user=f"m{n}")
            assert not reply.answered
        await app.router.drain()
        (listing,) = await console.say("/faq gaps", role=Privilege.MODERATOR)
        assert "asked 3x by 3 member(s)" in listing.text and "Draft:" in listing.text
        gap_id = listing.text.split("[", 1)[1].split("]", 1)[0]
        answer = "Yes! Digital gift cards from $10 to $500 are on the Gift Cards page."
        (done,) = await console.say(f"/faq approve {gap_id} {answer}", role=Privilege.MODERATOR)
        assert "Added to the FAQ" in done.text
        entries = await KnowledgeStore(app.store, app.lm).faq_entries("default")
        (entry,) = entries
        assert entry.answer == answer and len(entry.alternates) == 2
        (now,) = await console.say("do you sell gift cards?", user="m9")
        assert now.answered and [c.id for c in now.citations] == [entry.id]
        (empty,) = await console.say("/faq gaps", role=Privilege.MODERATOR)
        # The approved wordings are resolved; only a fresh wording could reopen the gap.
        assert gap_id not in empty.text


async def test_two_apps_on_one_redis_post_the_digest_once(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    consoles = [ConsoleAdapter(interactive=False), ConsoleAdapter(interactive=False)]
    async with (running_app(redis_url, tmp_path / "a", lm_client, adapters=[consoles[0]],
                            digest_channel="console:console") as first,
                running_app(redis_url, tmp_path / "b", lm_client, adapters=[consoles[1]],
                            digest_channel="console:console") as second):
        await consoles[0].say("hello from the first process")
        await consoles[1].say("hello from the second process", user="other")
        await first.router.drain()
        await second.router.drain()
        week = "2026-W47"
        posted = await asyncio.gather(*(run_weekly_digest("default", week, core=app.core)
                                        for app in (first, second, second, first)))
        assert sorted(posted) == [False, False, False, True]
        digests = [o for c in consoles for o in c.sent if o.destination is not None]
        assert len(digests) == 1 and digests[0].files[0].data.startswith(b"\x89PNG")


async def test_answers_and_campaign_posts_reach_the_stats(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    """The reply pipeline and the campaign runner report to analytics through the App's
    wiring, so /stats counts what members really asked and what campaigns really posted."""
    import time

    from bot.demo import DEMO_DIR
    from bot.growth.services import Growth

    console = ConsoleAdapter(interactive=False)
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console]) as app:
        for feature in app.features:
            loader = getattr(feature, "load_demo", None)
            if loader is not None:
                await loader(DEMO_DIR, "default")
        (grounded,) = await console.say("do you ship to Canada?")
        (unknown,) = await console.say("what is the airspeed of an unladen swallow?")
        assert grounded.answered and not unknown.answered
        campaigns = next(f for f in app.features if hasattr(f, "runner"))
        for listener in campaigns.runner.delivery_listeners:
            await listener("default", "console")
        await app.router.drain()
        report = await Growth(app.core).analytics.report("default", time.time(), days=1)
    counts = report.counts["console"]
    assert (counts["questions"], counts["answered"], counts["unanswered"]) == (2, 1, 1)
    assert counts["deliveries"] == 1
    assert report.sources == [(grounded.citations[0].title, 1)]
