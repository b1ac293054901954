"""Builds the writer's request for a campaign or a content post from the merchant's own data."""

from __future__ import annotations

import time

from bot.campaigns.models import Campaign
from bot.campaigns.repository import CampaignRepo
from bot.campaigns.sources import (
    choose_products,
    load_faq,
    load_products,
    segment_interests,
)
from bot.campaigns.writer import PostRequest
from bot.events import Platform
from bot.outbox import Outbox
from bot.persona import load_persona
from bot.storage.store import Store

DEFAULT_LIMITS = {Platform.DISCORD: 2000, Platform.TELEGRAM: 4096, Platform.CONSOLE: 4000}
WEEK_S = 7 * 86400


def max_chars(outbox: Outbox, platforms: set[Platform]) -> int:
    """The shortest message limit among the platforms a post goes to (adapters split longer
    text, but a post should read as one message)."""
    limits = []
    for platform in platforms or {Platform.DISCORD}:
        if platform in outbox.platforms:
            limits.append(outbox.adapter(platform).capabilities.max_message_length)
        else:
            limits.append(DEFAULT_LIMITS.get(platform, 2000))
    return max(300, min(min(limits), 2000) - 100)


async def post_request(store: Store, repo: CampaignRepo, outbox: Outbox, merchant: str,
                       kind: str, topic: str = "", brief: str = "", segment: str = "",
                       wanted: tuple[str, ...] = (),
                       platforms: set[Platform] | None = None) -> PostRequest:
    """Everything a post of `kind` may draw on: persona, catalog, FAQ, this week's questions."""
    catalog = await load_products(store, merchant)
    interests = segment_interests(segment)
    if topic and not wanted:
        interests = [*interests, *topic.lower().split()]
    count = 1 if kind == "spotlight" else 3
    products = [] if kind == "question" else choose_products(catalog, wanted, interests, count)
    faq = []
    if kind == "tips":
        words = set(topic.lower().split())
        faq = [f for f in await load_faq(store, merchant)
               if not words or words & set(f"{f.question} {f.answer}".lower().split())]
    questions = (await repo.questions_since(merchant, time.time() - WEEK_S)
                 if kind == "roundup" else [])
    chosen_platforms = platforms or set()
    return PostRequest(
        kind=kind, merchant=merchant, persona=await load_persona(store, merchant),
        products=products, brief=brief, topic=topic, audience=interests[:5], faq=faq,
        questions=questions, platforms=tuple(sorted(p.value for p in chosen_platforms)),
        max_chars=max_chars(outbox, chosen_platforms), catalog=catalog,
    )


def campaign_platforms(campaign: Campaign, dm_platforms: set[Platform]) -> set[Platform]:
    found = {t.platform for t in campaign.targets if t.platform is not None}
    if any(t.is_dm for t in campaign.targets):
        found |= dm_platforms
    return found


async def campaign_request(store: Store, repo: CampaignRepo, outbox: Outbox,
                           campaign: Campaign) -> PostRequest:
    platforms = campaign_platforms(campaign, set(outbox.platforms) - {Platform.CONSOLE})
    return await post_request(store, repo, outbox, campaign.merchant, campaign.kind,
                              brief=campaign.brief, segment=campaign.segment,
                              wanted=campaign.products, platforms=platforms)
