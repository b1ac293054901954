"""The form of a Telegram update kept in Redis until it is handled: only the fields handling
reads, and the member's words redacted, because a deleted key stays in the append-only file."""

from __future__ import annotations

from typing import Any

from bot.ports import redact_personal_data

# What the translator, the membership tracker and the migration step read; anything else
# (contacts, locations, quotes, replied-to texts, link previews) is never kept.
_USER = ("id", "is_bot", "first_name", "last_name")
_CHAT = ("id", "type", "is_forum")
_MESSAGE = ("message_id", "date", "edit_date", "message_thread_id", "is_topic_message",
            "migrate_to_chat_id", "migrate_from_chat_id")
_DOCUMENT = ("file_id", "file_unique_id", "mime_type", "file_size")
_CALLBACK = ("id", "chat_instance", "data", "inline_message_id")
# Entities the translator looks at; offsets count in the original text, so after a redaction
# changed it only `text_mention` (which names its user) still means something.
_ENTITIES = ("mention", "text_mention", "bot_command")


def stored_form(update: dict[str, Any]) -> dict[str, Any]:
    """`update` (Bot API JSON) reduced to what handling needs, texts redacted."""
    out: dict[str, Any] = {"update_id": update["update_id"]}
    for kind in ("message", "edited_message"):
        if isinstance(update.get(kind), dict):
            out[kind] = _message(update[kind], replied=True)
    query = update.get("callback_query")
    if isinstance(query, dict):
        kept = _pick(query, _CALLBACK)
        kept["from"] = _pick(query.get("from", {}), _USER)
        if isinstance(query.get("message"), dict):
            kept["message"] = _message(query["message"], replied=False, texts=False)
        out["callback_query"] = kept
    for kind in ("chat_member", "my_chat_member"):
        if isinstance(update.get(kind), dict):
            out[kind] = _member_change(update[kind])
    return out


def _member_change(change: dict[str, Any]) -> dict[str, Any]:
    """Who joined or left, with what rights and through which invite: the rights fields stay
    whole (each status has its own required ones), the people in it shrink to their ids and
    names."""
    out = dict(change)
    out["chat"] = _pick(change.get("chat", {}), _CHAT)
    if isinstance(change.get("from"), dict):
        out["from"] = _pick(change["from"], _USER)
    for side in ("old_chat_member", "new_chat_member"):
        if isinstance(change.get(side), dict):
            out[side] = dict(change[side], user=_pick(change[side].get("user", {}), _USER))
    link = change.get("invite_link")
    if isinstance(link, dict) and isinstance(link.get("creator"), dict):
        out["invite_link"] = dict(link, creator=_pick(link["creator"], _USER))
    return out


def _message(message: dict[str, Any], replied: bool, texts: bool = True) -> dict[str, Any]:
    out = _pick(message, _MESSAGE)
    out["chat"] = _pick(message.get("chat", {}), _CHAT)
    if isinstance(message.get("from"), dict):
        out["from"] = _pick(message["from"], _USER)
    if texts:
        for key in ("text", "caption"):
            if isinstance(message.get(key), str):
                original = message[key]
                out[key] = redact_personal_data(original)
                entities = _entities(message.get(f"{key}_entities" if key == "caption"
                                                 else "entities"), out[key] == original)
                if entities:
                    out["caption_entities" if key == "caption" else "entities"] = entities
        document = message.get("document")
        if isinstance(document, dict):
            out["document"] = _pick(document, _DOCUMENT)
            if isinstance(document.get("file_name"), str):
                out["document"]["file_name"] = redact_personal_data(document["file_name"])
    if replied and isinstance(message.get("reply_to_message"), dict):
        out["reply_to_message"] = _message(message["reply_to_message"], replied=False,
                                           texts=False)
    if isinstance(message.get("new_chat_members"), list):
        out["new_chat_members"] = [_pick(u, _USER) for u in message["new_chat_members"]
                                   if isinstance(u, dict)]
    if isinstance(message.get("left_chat_member"), dict):
        out["left_chat_member"] = _pick(message["left_chat_member"], _USER)
    return out


def _entities(entities: Any, text_unchanged: bool) -> list[dict[str, Any]]:
    if not isinstance(entities, list):
        return []
    kept = []
    for entity in entities:
        if not isinstance(entity, dict) or entity.get("type") not in _ENTITIES:
            continue
        if entity["type"] != "text_mention" and not text_unchanged:
            continue
        one = _pick(entity, ("type", "offset", "length"))
        if isinstance(entity.get("user"), dict):
            one["user"] = _pick(entity["user"], _USER)
        kept.append(one)
    return kept


def _pick(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: data[k] for k in keys if k in data}
