"""Store data made fit for the catalog: HTML to plain text, ids and links checked."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from bot.knowledge.models import ID_PATTERN

MAX_DESCRIPTION = 1500
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)  # as the CSV import
_BLOCK_TAGS = {"p", "br", "li", "div", "h1", "h2", "h3", "h4", "tr"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def plain_text(markup: str, limit: int = MAX_DESCRIPTION) -> str:
    """Shop descriptions are HTML: the words only, spaces collapsed, cut at a word."""
    if "<" in markup:
        parser = _Text()
        parser.feed(markup)
        parser.close()
        markup = "".join(parser.parts)
    text = re.sub(r"\s+", " ", html.unescape(markup)).strip()
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + "…"
    return text


def product_id(sku: str, fallback: str, seen: set[str]) -> str:
    """The store's SKU when it is a valid catalog id (so a catalog imported from CSV keeps
    its ids), else the store's own id (`wc-42`); a duplicate SKU falls back too."""
    sku = sku.strip()
    chosen = sku if sku and ID_PATTERN.match(sku) and sku not in seen else fallback
    seen.add(chosen)
    return chosen


def valid_url(value: object) -> str | None:
    return value if isinstance(value, str) and _URL.match(value) else None
