"""Hostile and broken import files, fuzzed with hypothesis: every one is either read into valid
records or refused with a clear message naming the file — never a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import UserInputError
from bot.knowledge.files import parse_catalog, parse_faq

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-shop"
FAQ = (DEMO / "faq.yaml").read_bytes()
CATALOG = (DEMO / "catalog.csv").read_bytes()

FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOSTILE_BYTES = st.sampled_from([
    b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\r", b"\n", b'"', b"'", b",", b":", b"- ", b"{",
    b"}", b"[", b"]", b"&a", b"*a", b"!!python/object/apply:os.system ['echo pwned']",
    b"!!binary", b"<<: *a", b"%YAML 1.1", b"---", b"...", b"\t", b"\xe2\x80\xae", b"\xed\xa0\x80",
    b"=cmd|' /C calc'!A0", b"9" * 400, b"nan", b"-inf", b"1e999", b"~", b"null", b"true",
])


def _mutate(base: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (position, cut length, insertion) edits: truncations, splices, junk."""
    data = base
    for pos, cut, insert in edits:
        at = pos % (len(data) + 1)
        data = data[:at] + insert + data[at + cut:]
    return data


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 200),
                           HOSTILE_BYTES | st.binary(max_size=20)), min_size=1, max_size=6)


def _check(parse: Any, data: bytes, filename: str) -> None:
    try:
        records = parse(data, filename)
    except UserInputError as exc:
        assert exc.message.strip() and "Traceback" not in exc.message
        name = filename.rsplit("/", 1)[-1]
        assert name in exc.message or "." not in name, exc.message
        return
    assert isinstance(records, list)
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)) and all(isinstance(i, str) and i for i in ids)


@FUZZ
@given(edits=EDITS, name=st.sampled_from(["faq.yaml", "faq.yml", "faq.json", "faq.csv",
                                          "faq.txt", "faq"]))
def test_mutated_faq_files_are_read_or_refused_clearly(edits: list[Any], name: str) -> None:
    _check(parse_faq, _mutate(FAQ, edits), name)


@FUZZ
@given(edits=EDITS, name=st.sampled_from(["catalog.csv", "catalog.json", "catalog.xlsx"]))
def test_mutated_catalogs_are_read_or_refused_clearly(edits: list[Any], name: str) -> None:
    _check(parse_catalog, _mutate(CATALOG, edits), name)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["id", "question", "answer", "alternates", "tags", "url", "sku",
                         "name", "price", "currency", "description", "stock", "x"]),
        inner, max_size=6),
    max_leaves=12,
)


@FUZZ
@given(doc=VALUES, wrap=st.booleans())
def test_structured_json_of_any_shape_is_read_or_refused_clearly(doc: Any, wrap: bool) -> None:
    for key, parse, name in (("faq", parse_faq, "faq.json"),
                             ("products", parse_catalog, "catalog.json")):
        body = {key: doc} if wrap else doc
        _check(parse, json.dumps(body).encode(), name)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_are_refused_or_read(data: bytes) -> None:
    for parse, name in ((parse_faq, "faq.yaml"), (parse_faq, "faq.csv"),
                        (parse_catalog, "catalog.csv"), (parse_catalog, "catalog.json")):
        _check(parse, data, name)


def test_yaml_tags_never_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = (f"faq:\n  - id: x\n    question: !!python/object/apply:os.system "
               f"['touch {marker}']\n    answer: a\n").encode()
    _check(parse_faq, payload, "faq.yaml")
    assert not marker.exists()


def test_a_billion_laughs_is_refused_quickly() -> None:
    lines = ["a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]"]
    for n in range(1, 9):
        prev = chr(ord("a") + n - 1)
        cur = chr(ord("a") + n)
        lines.append(f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},"
                     f"*{prev},*{prev}]")
    lines.append("faq: *i")
    _check(parse_faq, "\n".join(lines).encode(), "faq.yaml")
