"""A chat completion chunk read from its bytes, without parsing it: the stream relay's fast path.

Almost every chunk of a stream is a middle one: one choice, no `finish_reason` yet, no usage object,
no error, text only. `middle_chunk_chars` recognises such a chunk as the upstream wrote it and returns
the characters it generated, what `openai_chat.completion_chars` counts from the parsed chunk. Any
other chunk, or one written in a way it does not recognise (a space after a colon, an escape in the
text, a second `content` such as logprobs'), gets None, and the relay parses it as before. It does not
guess: a pattern such as `"finish_reason":null` cannot occur inside a JSON string, whose own quotes are
escaped, so each pattern found is the key it names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_CHOICES = b'"choices":[{'
_FINISH = b'"finish_reason"'
_FINISH_NULL = b'"finish_reason":null'
_CONTENT_KEY = b'"content"'
_CONTENT_TEXT = b'"content":"'
_CONTENT_NULL = b'"content":null'
_USAGE = b'"usage"'
_USAGE_NULL_LAST = b',"usage":null}'
# Anything that generates characters other than `content`, or that settlement reads from the chunk.
_PARSE = (b'"tool_calls"', b'"refusal":"', b'"reasoning', b'"error"')


def middle_chunk_chars(data: bytes) -> int | None:
    """The characters a middle chunk generated, or None when the chunk must be parsed."""
    if not (data.startswith(b"{") and data.endswith(b"}")) or _CHOICES not in data:
        return None
    if data.count(_FINISH) != 1 or _FINISH_NULL not in data:
        return None
    if _USAGE in data and not data.endswith(_USAGE_NULL_LAST):
        return None
    for marker in _PARSE:
        if marker in data:
            return None
    contents = data.count(_CONTENT_KEY)
    if contents == 0:
        return 0
    if contents > 1:
        return None
    start = data.find(_CONTENT_TEXT)
    if start < 0:
        return 0 if _CONTENT_NULL in data else None
    start += len(_CONTENT_TEXT)
    end = data.find(b'"', start)
    text = data[start:end]
    if end < 0 or b"\\" in text:
        return None
    try:
        return len(text.decode())
    except UnicodeDecodeError:
        return None


class MiddleShape:
    """The bytes around a middle chunk's text, which repeat from chunk to chunk of a stream, in and out.

    Learned from a chunk the relay read and wrote through `middle_chunk_chars` and the rewriter: what comes
    before its text (id, model, `"delta":{"content":"`) and after it (`"finish_reason":null}]…`), and what
    the client got around that text. A later chunk with the same bytes around a text without a quote or a
    backslash is the same JSON but for the text: every key `middle_chunk_chars` and the rewriter look for
    starts with a quote, so all of them lie in the bytes compared, and both would read it as they read the
    learned one. It is then relayed as a slice between the learned bytes, its characters counted from the
    slice. Any other chunk (a new `created` second, a finish reason, usage) gets None: the long way.
    """

    __slots__ = ("after", "before", "out_after", "out_before", "size")

    def __init__(self, before: bytes, after: bytes, out_before: bytes, out_after: bytes) -> None:
        self.before, self.after = before, after
        self.out_before, self.out_after = out_before, out_after
        self.size = len(before) + len(after)

    @classmethod
    def learn(cls, data: bytes, event: bytes, write: Callable[[bytes], bytes | None]) -> MiddleShape | None:
        """The shape of `data`, a middle chunk `write` turned into `event`; None when it cannot be told apart."""
        start = data.find(_CONTENT_TEXT)
        if start < 0:
            return None
        start += len(_CONTENT_TEXT)
        end = data.find(b'"', start)
        if end < 0 or b"\\" in data[start:end]:
            return None
        before, after = data[:start], data[end:]
        empty = write(before + after)  # the same chunk without its text, written the long way
        if empty is None or empty.count(_CONTENT_TEXT) != 1:
            return None
        at = empty.find(_CONTENT_TEXT) + len(_CONTENT_TEXT)
        shape = cls(before, after, empty[:at], empty[at:])
        return shape if shape.relay(data) == (event, len(data[start:end].decode())) else None

    def relay(self, data: bytes) -> tuple[bytes, int] | None:
        """What the client gets for `data` and the characters it generated, or None when it has another shape."""
        if len(data) < self.size or not (data.startswith(self.before) and data.endswith(self.after)):
            return None
        text = data[len(self.before) : len(data) - len(self.after)]
        if b'"' in text or b"\\" in text:
            return None
        try:
            chars = len(text.decode())
        except UnicodeDecodeError:
            return None
        return self.out_before + text + self.out_after, chars


def translated_chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> bytes:
    """One chat chunk as a translating upstream kind writes it (Anthropic's, Responses'): compact, as providers
    write theirs, so that the relay reads its middle chunks as bytes too instead of parsing what was just
    written."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return json.dumps({**head, "choices": [choice]}, ensure_ascii=False, separators=(",", ":")).encode()
