"""The profile record: storage round trip and the moving-average maths."""

from __future__ import annotations

import base64

import numpy as np

from bot.profiles.model import AFFINITY_KEEP, Profile, decode_vector, encode_vector


def _unit(seed: int, dim: int = 16) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_round_trip_keeps_every_field() -> None:
    profile = Profile("telegram:1", vector=_unit(1), affinity={"c:tents": 0.5, "t:winter": 0.25},
                      messages=7, on_topic=4, first_seen=1_700_000_000, last_seen=1_700_086_400,
                      platforms={"telegram", "discord"}, communities={"telegram:-100"},
                      bought={"TH-TENT-2P"}, recent=["hello", "tents?"], summary="Likes tents.",
                      summary_at=5)
    back = Profile.from_hash("telegram:1", profile.to_hash())
    assert back.affinity == profile.affinity
    assert (back.messages, back.on_topic, back.summary, back.summary_at) == (7, 4,
                                                                           "Likes tents.", 5)
    assert back.platforms == profile.platforms and back.communities == profile.communities
    assert back.bought == {"TH-TENT-2P"} and back.recent == ["hello", "tents?"]
    assert back.first_seen == profile.first_seen and back.last_seen == profile.last_seen
    assert back.vector is not None and profile.vector is not None
    assert np.allclose(back.vector, profile.vector, atol=1e-2)


def test_vector_is_compact_and_keeps_cosines() -> None:
    a, b = _unit(2, 384), _unit(3, 384)
    encoded = encode_vector(a)
    assert len(encoded) < 530  # int8 + scale, base64
    back = decode_vector(encoded)
    assert back is not None and abs(float(back @ b) - float(a @ b)) < 0.01
    assert abs(float(np.linalg.norm(back)) - 1) < 1e-5
    assert decode_vector("") is None


def test_reads_the_first_layout_too() -> None:
    old = {"vec": base64.b64encode(_unit(4).astype(np.float16).tobytes()).decode(),
           "aff": '{"c:tents":0.5}', "msgs": "3", "last": "100", "plat": "telegram",
           "recent": '["hi"]'}
    profile = Profile.from_hash("telegram:1", old)
    assert (profile.messages, profile.last_seen, profile.recent) == (3, 100.0, ["hi"])
    assert profile.vector is not None and profile.interest("tents") == 0.5


def test_vector_moves_towards_new_messages_and_stays_unit() -> None:
    profile = Profile("c:1")
    first, second = _unit(3), _unit(4)
    profile.add_message("a", first, {}, 10.0, "console", None)
    assert np.allclose(profile.vector, first)
    for _ in range(10):
        profile.add_message("b", second, {}, 20.0, "console", None)
    assert profile.vector is not None
    assert abs(float(np.linalg.norm(profile.vector)) - 1.0) < 1e-5
    assert float(profile.vector @ second) > 0.9 > float(profile.vector @ first)


def test_affinities_grow_with_repetition_and_chatter_does_not_erase_them() -> None:
    profile = Profile("c:1")
    vec = _unit(5)
    profile.add_message("tents!", vec, {"c:tents": 1.0}, 1.0, "console", None)
    once = profile.interest("tents")
    profile.add_message("more tents", vec, {"c:tents": 1.0}, 2.0, "console", None)
    assert profile.interest("tents") > once > 0
    before = profile.interest("tents")
    profile.add_message("lol", vec, {}, 3.0, "console", None)  # chatter
    assert profile.interest("tents") == before
    profile.add_message("stoves", vec, {"c:stoves": 1.0}, 4.0, "console", None)
    assert profile.interest("tents") < before  # another topic does shift the balance
    assert profile.top_interests(1)[0][0] in ("tents", "stoves")
    assert (profile.messages, profile.on_topic) == (4, 3)
    assert (profile.first_seen, profile.last_seen) == (1.0, 4.0)


def test_affinities_are_bounded() -> None:
    profile = Profile("c:1")
    vec = _unit(6)
    for index in range(60):
        profile.add_message("x", vec, {f"t:tag{index}": 1.0}, float(index), "console", None)
    assert len(profile.affinity) <= AFFINITY_KEEP
    assert len(profile.recent) <= 4


def test_export_names_only_this_member() -> None:
    profile = Profile("discord:9", vector=_unit(7), affinity={"c:tents": 0.4})
    exported = profile.export()
    assert exported["member"] == "discord:9"
    assert exported["interests"] == {"c:tents": 0.4}
    assert len(exported["interest_vector"]) == 16
