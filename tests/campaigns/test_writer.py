"""The post templates and the checks every written post passes before anyone may post it."""

from __future__ import annotations

import pytest

from bot.campaigns.checks import loops, problems, whole_sentences
from bot.campaigns.sources import ProductFact, choose_products
from bot.campaigns.writer import (
    POST_KINDS,
    PostRequest,
    compose,
    known_numbers,
    render_messages,
    template_env,
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


def test_prices_links_and_figures_must_come_from_the_facts() -> None:
    urls = frozenset({TENT.url})
    prices = {TENT.price, STOVE.price}
    facts = known_numbers(request())
    assert "3" in facts  # "3-season" in the description
    ok = "The Trailhead 2P Tent is just $329.00, a 3-season home for two happy campers."
    assert problems(ok, prices, urls, facts) == []
    assert problems("Grab the Pocket Stove for 49.95 USD while it lasts, friends!", prices,
                    urls, facts) == []
    found = problems("Now only $199 at https://bit.ly/cheap-tent - hurry!", prices, urls, facts)
    assert "price $199 is not in the catalog" in found
    assert "link https://bit.ly/cheap-tent is not a catalog or FAQ link" in found
    assert problems("It covers 2000 square feet and was voted best tent of 2024.", prices,
                    urls, facts) == ["the figure 2000 is not in the shop's facts",
                                     "the figure 2024 is not in the shop's facts"]
    assert problems("@everyone look at this tent, it is great for two.", prices, urls,
                    facts) == ["it pings everyone"]
    assert problems("Tents!", prices, urls, facts) == ["the text is too short"]


def test_looping_text_is_rejected() -> None:
    looping = "The tent is a 3-season tent with a floor. " * 4
    assert loops(looping)
    assert "it repeats itself" in problems(looping, set(), frozenset(), {"3"})
    assert not loops("Spring is here and the trails are calling. Pack light, pitch fast, "
                     "and keep your fly taut when the evening rain rolls in over the ridge.")


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
