"""Reads FAQ files (YAML, JSON, CSV) and catalog files (CSV, JSON) into validated records."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bot.errors import UserInputError
from bot.knowledge.models import FaqEntry, Product, RowErrors, faq_from_row, product_from_row
from bot.parsing import DocumentError, load_json, load_yaml

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
SHOWN_ERRORS = 15

T = TypeVar("T", FaqEntry, Product)


class ImportFailed(UserInputError):
    """The file has problems; nothing was changed. `problems` lists every one of them."""

    def __init__(self, filename: str, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:SHOWN_ERRORS]
        more = len(problems) - len(shown)
        text = (f"{filename}: nothing was imported, {len(problems)} problem"
                f"{'s' if len(problems) != 1 else ''} to fix:\n"
                + "\n".join(f"  {p}" for p in shown)
                + (f"\n  ...and {more} more" if more > 0 else ""))
        super().__init__(text)


def parse_faq(data: bytes, filename: str) -> list[FaqEntry]:
    """Validate an FAQ file (`.yaml`/`.yml`, `.json` or `.csv`).

    Raises:
        ImportFailed: with one message per bad row; nothing is returned partially.
    """
    rows = _rows(data, filename, ("yaml", "yml", "json", "csv"), list_key="faq")
    return _validate(rows, filename, faq_from_row, "id")


def parse_catalog(data: bytes, filename: str) -> list[Product]:
    """Validate a catalog file (`.csv` or `.json`).

    Raises:
        ImportFailed: with one message per bad row.
    """
    rows = _rows(data, filename, ("csv", "json"), list_key="products")
    return _validate(rows, filename, product_from_row, "sku")


def read_file(path: Path) -> bytes:
    if not path.is_file():
        raise UserInputError(f"{path}: no such file.")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserInputError(f"{path.name}: larger than {MAX_FILE_BYTES // 1024 // 1024} MB.")
    return path.read_bytes()


def _validate(rows: list[tuple[int, Any]], filename: str,
              build: Callable[[dict[str, Any], int, RowErrors], T | None], id_name: str) -> list[T]:
    errors = RowErrors()
    records: list[T] = []
    seen: dict[str, int] = {}
    for row, raw in rows:
        if not isinstance(raw, dict):
            errors.add(row, f"expected a mapping of fields, got {type(raw).__name__}")
            continue
        record = build({str(k).strip(): v for k, v in raw.items() if k is not None}, row,
                       errors)
        if record is None:
            continue
        if record.id in seen:
            errors.add(row, f"{id_name} {record.id!r} is already used by row {seen[record.id]}")
            continue
        seen[record.id] = row
        records.append(record)
    if not rows:
        errors.add(None, "the file has no entries")
    if errors:
        raise ImportFailed(filename, errors.messages)
    return records


def _rows(data: bytes, filename: str, formats: tuple[str, ...],
          list_key: str) -> list[tuple[int, Any]]:
    if len(data) > MAX_FILE_BYTES:
        raise ImportFailed(filename, [f"larger than {MAX_FILE_BYTES // 1024 // 1024} MB"])
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ImportFailed(filename, [f"unsupported file type {('.' + suffix) if suffix else ''!r}"
                                      f"; use one of: {', '.join('.' + f for f in formats)}"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed(filename, [f"not UTF-8 text (byte {exc.start}); save it as UTF-8"]
                           ) from None
    if suffix == "csv":
        rows = _csv_rows(text, filename)
    else:
        rows = _tree_rows(text, filename, suffix, list_key)
    if len(rows) > MAX_ROWS:
        raise ImportFailed(filename, [f"{len(rows)} rows; at most {MAX_ROWS} per file"])
    return rows


def _csv_rows(text: str, filename: str) -> list[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
        if not header:
            return []
        if len(set(header)) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise ImportFailed(filename, [f"header repeats column(s): {', '.join(dupes)}"])
        rows: list[tuple[int, Any]] = []
        problems: list[str] = []
        for number, raw in enumerate(reader, start=1):
            if None in raw:
                problems.append(f"row {number}: {len(raw[None]) + len(header)} cells but the "
                                f"header has {len(header)} columns (a comma not in quotes?)")
                continue
            if all((v or "").strip() == "" for v in raw.values()):
                continue  # blank line
            rows.append((number, raw))
        if problems:
            raise ImportFailed(filename, problems)
        return rows
    except csv.Error as exc:
        raise ImportFailed(filename, [f"not valid CSV near line {reader.line_num}: {exc}"]
                           ) from None


def _tree_rows(text: str, filename: str, suffix: str, list_key: str) -> list[tuple[int, Any]]:
    kind = "JSON" if suffix == "json" else "YAML"
    try:
        tree = load_json(text) if suffix == "json" else load_yaml(text)
    except DocumentError as exc:
        where = f" at line {exc.line}" if exc.line else ""
        raise ImportFailed(filename, [f"not valid {kind}{where}: {exc.problem}"]) from None
    if isinstance(tree, dict) and isinstance(tree.get(list_key), list):
        tree = tree[list_key]
    if tree is None:
        return []
    if not isinstance(tree, list):
        raise ImportFailed(filename, [f"expected a list of entries (or {{{list_key}: [...]}}), "
                                      f"got {type(tree).__name__}"])
    return list(enumerate(tree, start=1))
