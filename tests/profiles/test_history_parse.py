"""Reading a chat export: every line checked first, clear errors by line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import UserInputError
from bot.profiles.history import parse_history


def _write(tmp_path: Path, lines: list[object]) -> Path:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
                    encoding="utf-8")
    return path


def test_reads_lines_in_time_order_with_every_timestamp_form(tmp_path: Path) -> None:
    path = _write(tmp_path, [
        {"platform": "telegram", "community": -100123, "user": 42, "text": "later",
         "ts": "2026-01-02T00:00:00Z"},
        {"platform": "discord", "community": "guild1", "user": "7", "text": "first",
         "ts": 1_767_225_600},
        "",
        {"platform": "Telegram", "community": None, "user": "42", "text": "ms",
         "ts": 1_767_312_000_000},
    ])
    lines = parse_history(path)
    assert [h.text for h in lines] == ["first", "later", "ms"]
    assert lines[0].member == "discord:7" and lines[0].community == "discord:guild1"
    assert lines[1].member == "telegram:42" and lines[1].community == "telegram:-100123"
    assert lines[1].ts == 1_767_312_000.0 and lines[2].ts == 1_767_312_000.0
    assert lines[2].community is None


def test_bad_lines_are_all_listed_and_nothing_is_returned(tmp_path: Path) -> None:
    path = _write(tmp_path, [
        {"platform": "telegram", "user": "1", "text": "ok", "ts": 1},
        "{not json",
        {"platform": "icq", "user": "1", "text": "x", "ts": 1},
        {"platform": "telegram", "text": "who?", "ts": 1},
        {"platform": "telegram", "user": "1", "text": "when?"},
        {"platform": "telegram", "user": "1", "text": "x", "ts": "yesterday"},
        [1, 2],
    ])
    with pytest.raises(UserInputError) as err:
        parse_history(path)
    message = err.value.message
    assert "6 bad line(s); nothing was imported" in message
    for fragment in ("line 2: not valid JSON", "line 3: platform must be one of",
                     "line 4: user", "line 5: ts", "line 6: ts 'yesterday'", "line 7: expected"):
        assert fragment in message


def test_missing_file_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        parse_history(tmp_path / "nope.jsonl")


def test_cli_import_history_refuses_a_broken_file_and_keeps_faq_import(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import build_parser, main

    monkeypatch.setenv("SHOPKEEP_DATA_DIR", str(tmp_path))
    path = _write(tmp_path, [{"platform": "telegram", "user": "1", "text": "hi"}])
    assert main(["import", "history", str(path)]) == 1
    assert "line 1: ts" in capsys.readouterr().err
    parsed = build_parser().parse_args(["import", "faq", "faq.yaml"])
    assert (parsed.kind, parsed.file) == ("faq", Path("faq.yaml"))
