"""The post templates and the checks every written post passes before anyone may post it."""

from __future__ import annotations

import pytest

from bot.campaigns.sources import ProductFact, choose_products
from bot.campaigns.writer import (
    POST_KINDS,
    PostRequest,
    compose,
    problems,
    render_messages,
    template_env,
    whole_sentences,
)
from bot.persona import Persona

TENT = ProductFact("TH-TENT-2P", "Trailhead 2P Tent", "Freestanding 3-season tent.", 329.0,
                   "USD", "tents", ("backpacking", "2-person"),
                   "https://trailhead.example/products/trailhead-2p-tent", True)
STOVE = ProductFact("TH-STOVE", "Pocket Stove", "Tiny canister stove.", 49.95, "USD", "stoves",
                    ("cooking",), "https://trailhead.example/products/pocket-stove", False)
PERSONA = Persona(name="Scout", shop_name="Trailhead Outfitters", tone="Friendly.",
                  style_rules=["Keep it short."])


def request(kind: str = "promotion") -> PostRequest:
    return PostRequest(kind=kind, merchant="default", persona=PERSONA, products=[TENT],
                       brief="Spring camping season is here", topic="tents",
                       audience=["tents"], questions=["do you ship to Canada?"],
                       platforms=("discord",), catalog=[TENT, STOVE])


@pytest.mark.parametrize("kind", POST_KINDS)
def test_every_kind_has_a_template_with_the_persona(kind: str) -> None:
    system, user = render_messages(template_env(), request(kind))
    assert system.role == "system" and "Scout" in system.content
    assert "Trailhead Outfitters" in system.content and "Keep it short." in system.content
    assert "Do not write prices or links" in system.content
    assert user.content.strip()
    if kind != "question":
        assert "Trailhead 2P Tent" in user.content
    if kind == "promotion":
        assert "Spring camping season is here" in user.content
    if kind == "roundup":
        assert "do you ship to Canada?" in user.content


def test_prices_and_links_must_come_from_the_catalog() -> None:
    allowed = frozenset({TENT.url})
    assert problems("The Trailhead 2P Tent is just $329.00 and sleeps two happily.",
                    request(), allowed) == []
    assert problems("Grab the Pocket Stove for 49.95 USD while it lasts, friends!",
                    request(), allowed) == []
    found = problems("Now only $199 at https://bit.ly/cheap-tent - hurry!", request(), allowed)
    assert "price $199 is not in the catalog" in found
    assert "link https://bit.ly/cheap-tent is not a catalog or FAQ link" in found
    assert problems("@everyone look at this tent, it is great for two.", request(),
                    allowed) == ["it pings everyone"]
    assert problems("Tents!", request(), allowed) == ["the text is too short"]


def test_cut_off_text_keeps_only_whole_sentences() -> None:
    assert whole_sentences("Spring is here. The tent pitches fast! And the fly is") == (
        "Spring is here. The tent pitches fast!")
    assert whole_sentences("no sentence ends here") == ""


def test_the_facts_block_comes_from_the_catalog() -> None:
    text = compose("Spring is here.", [TENT, STOVE])
    assert text.splitlines()[2:] == [
        "• Trailhead 2P Tent — $329.00 — https://trailhead.example/products/trailhead-2p-tent",
        "• Pocket Stove — $49.95 (out of stock) — "
        "https://trailhead.example/products/pocket-stove",
    ]


def test_products_follow_the_campaign_then_the_audience() -> None:
    catalog = [STOVE, TENT]
    assert choose_products(catalog, ("TH-STOVE",), ["tents"]) == [STOVE]
    assert choose_products(catalog, ("category:tents",), []) == [TENT]
    assert choose_products(catalog, (), ["cooking"], limit=1) == [TENT]  # stove out of stock
    assert choose_products(catalog, (), ["backpacking"], limit=1) == [TENT]
