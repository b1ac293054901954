"""A chat tokenizer on `tokenizers` and Jinja2 alone: what the engine needs of transformers'
tokenizer (chat template, encode, decode, vocabulary), without importing transformers, which
takes about a second of a cold start (more on a busy machine)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any


class ChatTokenizer:
    """A `tokenizer.json` tokenizer with the folder's chat template.

    Raises:
        ValueError: the folder needs something this class does not do (the caller then
            loads transformers' tokenizer instead).
    """

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        config = json.loads((folder / "tokenizer_config.json").read_text())
        if config.get("clean_up_tokenization_spaces"):
            raise ValueError("decoding clean-up is not implemented here")
        template = config.get("chat_template")
        if template is None and (folder / "chat_template.jinja").exists():
            template = (folder / "chat_template.jinja").read_text()
        if template is not None and not isinstance(template, str):
            raise ValueError("named chat templates are not implemented here")
        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.chat_template: str | None = template
        self.special = {name: _content(config.get(name)) for name in
                        ("bos_token", "eos_token", "unk_token", "pad_token")}
        eos = self.special["eos_token"]
        self.eos_token_id: int | None = self.backend.token_to_id(eos) if eos else None
        self._compiled: Any = None

    def apply_chat_template(self, messages: list[dict[str, str]],
                            add_generation_prompt: bool = False, tokenize: bool = True
                            ) -> Any:
        """The conversation as the template writes it: token ids, or the text."""
        if self.chat_template is None:
            raise ValueError("the tokenizer has no chat template")
        if self._compiled is None:
            self._compiled = _compile(self.chat_template)
        specials = {k: v for k, v in self.special.items() if v is not None}
        text = self._compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     tools=None, documents=None, **specials)
        if not tokenize:
            return text
        return self.backend.encode(text, add_special_tokens=False).ids

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": self.backend.encode(text, add_special_tokens=True).ids}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return str(self.backend.decode(ids, skip_special_tokens=skip_special_tokens))

    def get_vocab(self) -> dict[str, int]:
        return dict(self.backend.get_vocab(with_added_tokens=True))


def _content(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _compile(template: str) -> Any:
    """The template compiled as transformers compiles it (sandboxed, trimmed blocks)."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None,
               separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(template)
