"""FAQ entries and catalog products: the records, and their validation from raw rows."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_TRUE = {"true", "yes", "y", "1", "in stock", "instock"}
_FALSE = {"false", "no", "n", "0", "out of stock", "oos"}

FAQ_FIELDS = ("id", "question", "answer", "alternates", "tags", "url")
FAQ_REQUIRED = ("id", "question", "answer")
PRODUCT_FIELDS = ("sku", "name", "description", "price", "currency", "category", "tags", "url",
                  "image_url", "in_stock")
PRODUCT_REQUIRED = ("sku", "name", "description", "price", "currency", "category")

MAX_QUESTION = 300
MAX_ANSWER = 4000
MAX_ALTERNATES = 20


@dataclass(frozen=True)
class FaqEntry:
    id: str
    question: str
    answer: str
    alternates: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    url: str | None = None

    @property
    def title(self) -> str:
        return self.question

    def as_record(self) -> dict[str, Any]:
        data = asdict(self)
        data["alternates"] = list(self.alternates)
        data["tags"] = list(self.tags)
        return data


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    description: str
    price: float
    currency: str
    category: str
    tags: tuple[str, ...] = ()
    url: str | None = None
    image_url: str | None = None
    in_stock: bool = True

    @property
    def id(self) -> str:
        return self.sku

    @property
    def title(self) -> str:
        return self.name

    def price_text(self) -> str:
        amount = f"{self.price:,.2f}".removesuffix(".00")
        return f"${amount}" if self.currency == "USD" else f"{amount} {self.currency}"

    def as_record(self) -> dict[str, Any]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        return data


@dataclass
class RowErrors:
    """Collects every problem of a file so the merchant can fix them all in one go."""

    messages: list[str] = field(default_factory=list)

    def add(self, row: int | None, message: str) -> None:
        self.messages.append(f"row {row}: {message}" if row is not None else message)

    def __bool__(self) -> bool:
        return bool(self.messages)


def faq_from_row(raw: dict[str, Any], row: int, errors: RowErrors) -> FaqEntry | None:
    """Validate one FAQ row; problems go to `errors` and the result is None."""
    before = len(errors.messages)
    _unknown_fields(raw, FAQ_FIELDS, row, errors)
    values = {k: _text(raw.get(k)) for k in ("id", "question", "answer", "url")}
    _required(values, FAQ_REQUIRED, row, errors)
    if values["id"] and not ID_PATTERN.match(values["id"]):
        errors.add(row, f"id {values['id']!r} may only use letters, digits, '.', '-' and '_' "
                        "(at most 64)")
    if len(values["question"]) > MAX_QUESTION:
        errors.add(row, f"question is {len(values['question'])} characters; keep it under "
                        f"{MAX_QUESTION}")
    if len(values["answer"]) > MAX_ANSWER:
        errors.add(row, f"answer is {len(values['answer'])} characters; keep it under "
                        f"{MAX_ANSWER}")
    alternates = _list(raw.get("alternates"), "alternates", row, errors)
    if len(alternates) > MAX_ALTERNATES:
        errors.add(row, f"{len(alternates)} alternates; at most {MAX_ALTERNATES}")
    tags = _list(raw.get("tags"), "tags", row, errors)
    url = _url(values["url"], "url", row, errors)
    if len(errors.messages) > before:
        return None
    return FaqEntry(values["id"], values["question"], values["answer"],
                    tuple(a for a in alternates if len(a) <= MAX_QUESTION),
                    tuple(t.lower() for t in tags), url)


def product_from_row(raw: dict[str, Any], row: int, errors: RowErrors) -> Product | None:
    """Validate one catalog row; problems go to `errors` and the result is None."""
    before = len(errors.messages)
    _unknown_fields(raw, PRODUCT_FIELDS, row, errors)
    values = {k: _text(raw.get(k)) for k in ("sku", "name", "description", "currency",
                                             "category", "url", "image_url")}
    values["price"] = _text(raw.get("price"))
    _required(values, PRODUCT_REQUIRED, row, errors)
    if values["sku"] and not ID_PATTERN.match(values["sku"]):
        errors.add(row, f"sku {values['sku']!r} may only use letters, digits, '.', '-' and '_' "
                        "(at most 64)")
    price = _price(raw.get("price"), row, errors)
    currency = values["currency"].upper()
    if currency and not CURRENCY.match(currency):
        errors.add(row, f"currency {values['currency']!r} is not a 3-letter code like USD")
    tags = _list(raw.get("tags"), "tags", row, errors)
    in_stock = _bool(raw.get("in_stock"), row, errors)
    url = _url(values["url"], "url", row, errors)
    image_url = _url(values["image_url"], "image_url", row, errors)
    if len(errors.messages) > before or price is None:
        return None
    return Product(values["sku"], values["name"], values["description"], price, currency,
                   values["category"].lower(), tuple(t.lower() for t in tags), url, image_url,
                   in_stock)


def _unknown_fields(raw: dict[str, Any], allowed: tuple[str, ...], row: int,
                    errors: RowErrors) -> None:
    for name in raw:
        if str(name) not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.add(row, f"unknown field {str(name)!r}{hint}; allowed: {', '.join(allowed)}")


def _required(values: dict[str, str], names: tuple[str, ...], row: int,
              errors: RowErrors) -> None:
    for name in names:
        if not values.get(name):
            errors.add(row, f"{name} is missing")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value).strip()


def _list(value: Any, name: str, row: int, errors: RowErrors) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split("|") if part.strip()]
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, (str, int, float)) for v in value):
            errors.add(row, f"{name} must be a list of texts")
            return []
        return [str(v).strip() for v in value if str(v).strip()]
    errors.add(row, f"{name} must be a list of texts or a '|'-separated text, not {value!r}")
    return []


def _price(value: Any, row: int, errors: RowErrors) -> float | None:
    if value is None or _text(value) == "":
        return None  # reported as missing
    if isinstance(value, bool):
        errors.add(row, f"price {value!r} is not a number")
        return None
    try:
        price = float(str(value).strip().lstrip("$").replace(",", ""))
    except ValueError:
        errors.add(row, f"price {value!r} is not a number")
        return None
    if not math.isfinite(price) or price < 0:
        errors.add(row, f"price {value!r} must be zero or more")
        return None
    return round(price, 2)


def _bool(value: Any, row: int, errors: RowErrors) -> bool:
    if isinstance(value, bool):
        return value
    word = _text(value).lower()
    if not word:
        return True  # optional column left empty
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    errors.add(row, f"in_stock {value!r} must be true or false")
    return True


def _url(value: str, name: str, row: int, errors: RowErrors) -> str | None:
    if not value:
        return None
    if not _URL.match(value):
        errors.add(row, f"{name} {value!r} is not a web address starting with http:// or "
                        "https://")
        return None
    return value
