"""The order-status patterns: wordings that must be claimed, order-policy and other-business
questions that must be left to the FAQ, and order numbers read from the text."""

from __future__ import annotations

import pytest

from bot.commerce.intent import order_number, order_question

ORDER_STATUS = [
    "where is my order?",
    "wheres my package",
    "Where's my parcel??",
    "order #1042 hasn't arrived",
    "tracking for 1042",
    "has my order shipped yet?",
    "any update on my order? it's been a week",
    "my package still hasn't come",
    "when will my order arrive",
    "can you check the status of my purchase",
    "what's the tracking number for my order",
    "order 1042?",
    "#1042 status",
    "i ordered a tent last week, has it shipped?",
    "is my delivery running late",
]

NOT_ORDER_STATUS = [
    "how do I cancel my order?",
    "Can I change the shipping address on my order?",
    "how do I return my order",
    "do you ship to canada?",
    "how long does shipping take?",
    "I want to order a tent",
    "where do I order a gift card?",
    "My card still hasn't arrived",  # a bank card, not a shop order
    "what's the status of my flight",
    "track my spending this month",
    "My item arrived damaged, what should I do?",
    "is the Trailhead 2P tent waterproof?",
    "thanks, that helped!",
]


@pytest.mark.parametrize("text", ORDER_STATUS)
def test_order_status_wordings_are_claimed(text: str) -> None:
    assert order_question(text) is not None


@pytest.mark.parametrize("text", NOT_ORDER_STATUS)
def test_policy_and_other_questions_are_left_alone(text: str) -> None:
    assert order_question(text) is None


@pytest.mark.parametrize(("text", "number"), [
    ("order #1042 hasn't arrived", "1042"),
    ("tracking for 1042", "1042"),
    ("order no. 55123 please", "55123"),
    ("my order number: 998877", "998877"),
    ("where is my order?", None),
    ("I bought 2 tents for $329.00", None),
])
def test_order_numbers_are_read_from_the_text(text: str, number: str | None) -> None:
    ask = order_question(text)
    assert order_number(text) == number
    if ask is not None:
        assert ask.number == number


def test_a_bare_number_counts_only_when_one_was_asked_for() -> None:
    assert order_number("it's 1042") is None
    assert order_number("it's 1042", bare=True) == "1042"
    assert order_number("1042 or maybe 1043", bare=True) is None  # ambiguous: ask again
    assert order_number("call me on 555-0100", bare=True) is None
