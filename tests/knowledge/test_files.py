"""FAQ and catalog files: good files of every format, and every kind of broken file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.knowledge.files import ImportFailed, parse_catalog, parse_faq

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-shop"

CATALOG_HEADER = "sku,name,description,price,currency,category,tags,url,image_url,in_stock\n"


def test_demo_files_parse() -> None:
    faq = parse_faq((DEMO / "faq.yaml").read_bytes(), "faq.yaml")
    catalog = parse_catalog((DEMO / "catalog.csv").read_bytes(), "catalog.csv")
    assert len(faq) == 25 and len(catalog) == 40
    returns = next(e for e in faq if e.id == "returns-policy")
    assert "60 days" in returns.answer and len(returns.alternates) == 3
    tent = next(p for p in catalog if p.sku == "TH-TENT-2P")
    assert tent.price == 329.0 and tent.currency == "USD" and tent.in_stock
    assert "backpacking" in tent.tags
    assert not next(p for p in catalog if p.sku == "TH-TENT-UL1").in_stock


def test_faq_json_and_csv_give_the_same_entries() -> None:
    rows = [{"id": "gift-wrap", "question": "Do you gift wrap?", "answer": "Yes, for $5.",
             "alternates": ["Can you wrap it?", "Gift wrapping?"], "tags": ["gifts"],
             "url": "https://shop.example/wrap"}]
    from_json = parse_faq(json.dumps({"faq": rows}).encode(), "faq.json")
    csv_text = ("id,question,answer,alternates,tags,url\n"
                'gift-wrap,Do you gift wrap?,"Yes, for $5.",Can you wrap it?|Gift wrapping?,'
                "gifts,https://shop.example/wrap\n")
    from_csv = parse_faq(csv_text.encode(), "faq.csv")
    assert from_json == from_csv
    assert from_json[0].alternates == ("Can you wrap it?", "Gift wrapping?")


def test_catalog_json() -> None:
    data = [{"sku": "A1", "name": "Mug", "description": "A mug.", "price": 12.5,
             "currency": "usd", "category": "Kitchen", "in_stock": False}]
    [mug] = parse_catalog(json.dumps(data).encode(), "catalog.json")
    assert mug.currency == "USD" and mug.category == "kitchen" and not mug.in_stock


def test_row_level_messages_list_every_problem() -> None:
    body = (CATALOG_HEADER
            + "A1,Mug,A mug.,12,USD,kitchen,,,,true\n"
            + "A2,Cup,A cup.,abc,USD,kitchen,,,,true\n"
            + "A3,,No name.,5,USD,kitchen,,,,maybe\n"
            + "A1,Mug again,Dup.,3,USD,kitchen,,,,true\n"
            + "A4,Jug,A jug.,-2,US,kitchen,,not-a-url,,true\n")
    with pytest.raises(ImportFailed) as info:
        parse_catalog(body.encode(), "catalog.csv")
    problems = info.value.problems
    assert "row 2: price 'abc' is not a number" in problems
    assert "row 3: name is missing" in problems
    assert "row 3: in_stock 'maybe' must be true or false" in problems
    assert "row 4: sku 'A1' is already used by row 1" in problems
    assert any(p.startswith("row 5: price '-2'") for p in problems)
    assert any(p.startswith("row 5: currency 'US'") for p in problems)
    assert any(p.startswith("row 5: url 'not-a-url'") for p in problems)
    assert "nothing was imported" in info.value.message


@pytest.mark.parametrize(("filename", "data", "expected"), [
    ("faq.yaml", b"- id: a\n  question: [unclosed\n", "not valid YAML at line"),
    ("faq.json", b'[{"id": "a",}]', "not valid JSON at line 1"),
    ("faq.yaml", b"", "the file has no entries"),
    ("faq.yaml", b"just a string", "expected a list of entries"),
    ("faq.yaml", b"- 42\n", "row 1: expected a mapping of fields"),
    ("faq.txt", b"id,question\n", "unsupported file type '.txt'"),
    ("faq.csv", b"\xff\xfeid,question", "not UTF-8 text"),
    ("faq.csv", b"id,question,answer\na,b,c,d\n", "row 1: 4 cells but the header has 3"),
    ("faq.csv", b"id,id,answer\na,b,c\n", "header repeats column(s): id"),
    ("faq.yaml", b"- id: a\n  question: q\n  answr: x\n",
     "row 1: unknown field 'answr' (did you mean 'answer'?)"),
    ("faq.yaml", b"- id: 'bad id!'\n  question: q\n  answer: a\n", "row 1: id 'bad id!'"),
    ("faq.yaml", b"- id: a\n  question: q\n  answer: a\n  alternates: {x: 1}\n",
     "row 1: alternates must be a list"),
])
def test_broken_faq_files(filename: str, data: bytes, expected: str) -> None:
    with pytest.raises(ImportFailed) as info:
        parse_faq(data, filename)
    assert expected in info.value.message


def test_catalog_rejects_yaml_and_long_error_lists_are_summarised() -> None:
    with pytest.raises(ImportFailed, match=r"use one of: \.csv, \.json"):
        parse_catalog(b"- sku: a", "catalog.yaml")
    rows = "".join(f"S{i},N,D,x{i},USD,c,,,,true\n" for i in range(30))
    with pytest.raises(ImportFailed) as info:
        parse_catalog((CATALOG_HEADER + rows).encode(), "catalog.csv")
    assert len(info.value.problems) == 30
    assert "...and 15 more" in info.value.message
