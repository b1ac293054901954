"""Whether a line of chat reads like a question (help channels answer those unmentioned)."""

from __future__ import annotations

import re

_QUESTION_WORDS = re.compile(
    r"^(how|what|when|where|which|who|why|can|could|do|does|did|is|are|will|would|should|"
    r"any|anyone|hw|wat|wen)\b",
    re.IGNORECASE,
)


def looks_like_question(text: str) -> bool:
    stripped = text.strip()
    return stripped.endswith("?") or bool(_QUESTION_WORDS.match(stripped))
