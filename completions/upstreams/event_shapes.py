"""A pass-through stream's middle events read from their bytes, without parsing them: its relay's fast path.

Almost every event of a native stream (Anthropic's Messages, OpenAI's Responses) is a text delta, relayed
as it came; the reader only counts the characters it generated (and, for Responses, keeps its sequence
number). Such events repeat from one to the next but for a few values: the text, the sequence number, an
`obfuscation` padding, an item's id. `EventShape` is learned from one event the reader parsed: its bytes
cut at those values into fixed pieces and holes. A later event whose bytes are the same pieces around holes that each
hold a plain value (a string without a quote, a backslash or a control character, valid UTF-8; or a
non-negative integer written without a leading zero) is the same JSON but for those values, so parsing it
would read it as the learned one was read: its holes are handed back. Any other event gets None, and the
reader parses it as before. It does not guess: a learned shape is checked against the reader's own
answers for its event and for a probe with other values before it is used (`checked_shape`).

This is completions/chat_chunks.py's `MiddleShape` for typed events, whose values sit anywhere in the
event rather than only between a fixed head and tail.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from core.cache import ProcessCache

# What a plain string value may not hold: the end of the string, an escape, or what JSON (and the SSE frame
# around it) cannot carry raw.
_UNPLAIN = re.compile(rb'["\\\x00-\x1f]')
_STRING = rb'([^"\\\x00-\x1f]*)'
_INTEGER = rb"(0|[1-9][0-9]*)"
# The shapes checked against a reader's parsing (None: it disagreed), by the reader's name, its keys and the cut:
# the same provider writes the same shape in every stream, so it is built and checked once per process.
_CHECKED: ProcessCache[EventShape | None] = ProcessCache("event shapes", max_entries=256)


class EventShape:
    """The fixed pieces of an event's bytes around its holes (a value each, at a key the reader chose)."""

    __slots__ = ("groups", "pattern", "pieces", "slots", "strings")

    def __init__(self, pieces: tuple[bytes, ...], strings: tuple[bool, ...], slots: tuple[int, ...], keys: int) -> None:
        self.pieces = pieces  # one more than the holes: before the first, between them, after the last
        self.strings = strings  # per hole in the order they occur: a string's content, or an integer
        self.slots = slots  # per hole in the order they occur: its key's place in the keys it was learned for
        # The pieces around plain values, as one expression (matched in C); an empty group last, for a key the
        # learned event lacked.
        holes = [_STRING if string else _INTEGER for string in strings] + [b"()"]
        self.pattern = re.compile(b"".join(re.escape(piece) + hole for piece, hole in zip(pieces, holes, strict=True)))
        where = {slot: n + 1 for n, slot in enumerate(slots)}
        self.groups = tuple(where.get(key, len(slots) + 1) for key in range(keys))

    @classmethod
    def learn(cls, frame: bytes, keys: tuple[bytes, ...]) -> tuple[EventShape, list[bytes]] | None:
        """The shape of `frame` with a hole at the value of each key present (`"name":"` a string, `"name":` an
        integer), and its holes' values in the order of `keys` (b"" for a key it lacks); None when a key occurs
        more than once or a value is not plain."""
        cut = _cut(frame, keys)
        if cut is None:
            return None
        shape = cls(*cut, len(keys))
        values = shape.match(frame)
        return None if values is None else (shape, values)

    def match(self, frame: bytes) -> list[bytes] | None:
        """The values in `frame`'s holes in the order of the keys the shape was learned for (b"" for a key the
        learned event lacked), or None when it has another shape."""
        found = self.pattern.fullmatch(frame)
        if found is None:
            return None
        if not frame.isascii():
            # The pieces are UTF-8 and end at ASCII: the frame is UTF-8 exactly when every value is.
            try:
                frame.decode()
            except UnicodeDecodeError:
                return None
        groups = self.groups
        return [found[groups[0]]] if len(groups) == 1 else list(found.group(*groups))

    def write(self, values: list[bytes]) -> bytes:
        """The event of this shape with `values` (in the order of its keys) in its holes."""
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            out += (values[slot], piece)
        return b"".join(out)


def _hole_end(frame: bytes, start: int, string: bool) -> int:
    """Where the plain value starting at `start` ends, or -1 when it is not one."""
    if string:
        end = frame.find(b'"', start)
        if end < 0:
            return -1
        value = frame[start:end]
        if _UNPLAIN.search(value):
            return -1
        if not value.isascii():
            try:
                value.decode()
            except UnicodeDecodeError:
                return -1
        return end
    end = start
    while end < len(frame) and 48 <= frame[end] <= 57:
        end += 1
    if end == start or (frame[start] == 48 and end - start > 1):
        return -1
    return end


def checked_shape(
    reader: str, frame: bytes, keys: tuple[bytes, ...], agrees: Callable[[bytes, list[bytes]], bool]
) -> EventShape | None:
    """The shape of `frame` (`EventShape.learn`), when `agrees(event, values)`, the reader's own reading of an
    event against what the shape would tell of it, holds for `frame` and for a probe: the same shape with a
    string one character longer and an integer one larger in each hole. A hole the reader reads differently
    (the value of another key than it seemed, not a value at all) tells apart the two. Which values fill the
    holes does not change how the rest reads, so what `reader` (its name) found is kept for the cut."""
    cut = _cut(frame, keys)
    if cut is None:
        return None

    def checked() -> EventShape | None:
        learned = EventShape.learn(frame, keys)
        if learned is None:
            return None
        shape, values = learned
        probe = list(values)
        for slot, string in zip(shape.slots, shape.strings, strict=True):
            probe[slot] = values[slot] + b"x" if string else str(int(values[slot]) + 1).encode()
        return shape if agrees(frame, values) and agrees(shape.write(probe), probe) else None

    return _CHECKED.get((reader, keys, cut), checked)


def _cut(frame: bytes, keys: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], tuple[bool, ...], tuple[int, ...]] | None:
    """`frame` cut at the value of each key present: the pieces around them, whether each is a string, and its
    key's place in `keys`; None when a key occurs more than once or a value is not plain."""
    found = []
    for key in keys:
        at = frame.find(key)
        if at >= 0 and frame.find(key, at + 1) >= 0:
            return None
        found.append(at)
    where = enumerate(zip(keys, found, strict=True))
    holes = sorted((at + len(key), key.endswith(b'"'), n) for n, (key, at) in where if at >= 0)
    pieces, strings = [], []
    at = 0
    for start, string, _ in holes:
        end = _hole_end(frame, start, string)
        if end < 0 or start < at:
            return None
        pieces.append(frame[at:start])
        strings.append(string)
        at = end
    pieces.append(frame[at:])
    return tuple(pieces), tuple(strings), tuple(n for _, _, n in holes)


def plain_chars(value: bytes) -> int:
    """The characters of a plain string value."""
    return len(value) if value.isascii() else len(value.decode())
