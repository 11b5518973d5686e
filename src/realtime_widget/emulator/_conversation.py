"""The conversation: an ordered list of items, with the create/retrieve/truncate/delete rules."""

from __future__ import annotations

import copy
import re
from typing import Any

from ._errors import ClientError
from ._ids import new_id
from ._validate import enum, list_of, obj, string, type_error, value_error

_PART_TYPES = {
    "user": ("input_text", "input_audio", "input_image"),
    "assistant": ("output_text", "output_audio"),
    "system": ("input_text",),
}
_PART_FIELDS = {"type": string, "text": string, "transcript": string, "audio": string}
_CHUNKS = re.compile(r"\s*\S+|\s+$")
_TRAILING = re.compile(r"[^\w']+$")


def cut_transcript(transcript: str, heard_chars: float) -> str:
    """The words of ``transcript`` said completely within its first ``heard_chars`` characters.

    The characters count speech only: the synthetic voice is silent on spaces and punctuation.
    """
    kept = ""
    for chunk in _CHUNKS.findall(transcript):
        word_end = len(kept) + len(_TRAILING.sub("", chunk))
        if word_end > heard_chars + 1e-6:
            break
        kept += chunk
    return kept


def normalize_item(raw: Any, param: str = "item") -> dict[str, Any]:
    """Validate a client item and return the server's representation of it."""
    if not isinstance(raw, dict):
        raise type_error(param, "an object", raw)
    kind = enum("message", "function_call", "function_call_output")(
        raw.get("type"), f"{param}.type"
    )
    item: dict[str, Any] = {"id": raw.get("id") or new_id("item"), "object": "realtime.item"}
    string(item["id"], f"{param}.id")
    item["type"] = kind
    if kind == "message":
        role = enum("user", "assistant", "system")(raw.get("role"), f"{param}.role")
        parts = list_of(obj(_PART_FIELDS, required=("type",)))(
            raw.get("content"), f"{param}.content"
        )
        for i, part in enumerate(parts):
            enum(*_PART_TYPES[role])(part["type"], f"{param}.content[{i}].type")
        item.update(role=role, content=parts)
    elif kind == "function_call":
        checked = obj(
            {"name": string, "arguments": string, "call_id": string},
            required=("name", "arguments", "call_id"),
        )(raw, param)
        item.update(checked)
    else:
        checked = obj({"call_id": string, "output": string}, required=("call_id", "output"))(
            raw, param
        )
        item.update(checked)
    item["status"] = "completed"
    return item


class Conversation:
    """Items in order; every mutation reports the neighbour ids the events need."""

    def __init__(self) -> None:
        self.id = new_id("conv")
        self.items: list[dict[str, Any]] = []

    def _index(self, item_id: str, param: str = "item_id") -> int:
        for i, item in enumerate(self.items):
            if item["id"] == item_id:
                return i
        raise ClientError(
            "item_not_found", param, f"Item with item_id '{item_id}' not found in the conversation."
        )

    def get(self, item_id: str) -> dict[str, Any]:
        return self.items[self._index(item_id)]

    def find(self, item_id: str) -> dict[str, Any] | None:
        return next((item for item in self.items if item["id"] == item_id), None)

    def previous_id(self, item_id: str) -> str | None:
        i = self._index(item_id)
        return self.items[i - 1]["id"] if i > 0 else None

    def add(self, item: dict[str, Any], after: str | None = None) -> str | None:
        """Insert ``item`` (append by default, at the start for ``"root"``).

        Returns the id of the item before it.
        """
        if self.find(item["id"]) is not None:
            raise ClientError(
                "item_id_already_exists", "item.id", f"Item '{item['id']}' already exists."
            )
        if after is None:
            position = len(self.items)
        elif after == "root":
            position = 0
        else:
            position = self._index(after, "previous_item_id") + 1
        self.items.insert(position, item)
        return self.items[position - 1]["id"] if position > 0 else None

    def delete(self, item_id: str) -> None:
        del self.items[self._index(item_id)]

    def truncate(
        self,
        item_id: str,
        content_index: Any,
        audio_end_ms: Any,
        spoken_ms: int,
        chars_per_ms: float | None = None,
    ) -> None:
        """Cut an assistant audio item at ``audio_end_ms`` (of ``spoken_ms`` total).

        The transcript keeps the words heard by then. ``chars_per_ms`` is the voice's pace; without
        it the whole transcript is taken to span ``spoken_ms``.
        """
        item = self.get(item_id)
        if item.get("role") != "assistant":
            raise value_error("item_id", item_id, "Only assistant messages can be truncated.")
        if not isinstance(content_index, int) or not 0 <= content_index < len(item["content"]):
            raise value_error("content_index", content_index, "No such content part.")
        part = item["content"][content_index]
        if part.get("type") != "output_audio":
            raise value_error("content_index", content_index, "That content part has no audio.")
        if isinstance(audio_end_ms, bool) or not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise type_error("audio_end_ms", "a non-negative integer", audio_end_ms)
        if audio_end_ms > spoken_ms:
            raise value_error(
                "audio_end_ms", audio_end_ms, f"The audio is only {spoken_ms} ms long."
            )
        transcript = part.get("transcript") or ""
        if chars_per_ms is None:
            chars_per_ms = len(transcript) / spoken_ms if spoken_ms else 0.0
        part["transcript"] = cut_transcript(transcript, audio_end_ms * chars_per_ms)

    def snapshot(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.items)


def item_text(item: dict[str, Any]) -> str:
    """What an item said, for responders and token counts (audio: its transcript)."""
    if item.get("type") == "function_call":
        return f"{item.get('name', '')}({item.get('arguments', '')})"
    if item.get("type") == "function_call_output":
        return str(item.get("output", ""))
    texts = [p.get("text") or p.get("transcript") or "" for p in item.get("content", [])]
    return " ".join(t for t in texts if t)
