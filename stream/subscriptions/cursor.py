"""Feed cursors: where a subscriber is, as per-partition Kafka offsets.

A cursor maps each partition of the alerts topic to the *next* offset the subscriber
has not seen. It travels as URL-safe base64 of compact JSON (``{"0": 12, "1": 7}``)
so it fits an SSE ``id:`` line, a ``Last-Event-ID`` header and a query parameter.

>>> c = Cursor({0: 12, 1: 7})
>>> Cursor.decode(c.encode()) == c
True
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

import orjson

MAX_CURSOR_CHARS = 4096


class CursorError(ValueError):
    """A cursor string that cannot be a VitalStream cursor."""


class Cursor(dict[int, int]):
    """Partition -> next offset. Partitions absent from a cursor start at the beginning."""

    def encode(self) -> str:
        data = orjson.dumps({str(p): o for p, o in sorted(self.items())})
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        if not text or len(text) > MAX_CURSOR_CHARS:
            raise CursorError("cursor is empty or too long")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = orjson.loads(raw)
        except (binascii.Error, ValueError) as exc:
            raise CursorError("cursor is not base64url-encoded JSON") from exc
        if not isinstance(data, dict):
            raise CursorError("cursor must encode an object of partition -> offset")
        cursor = cls()
        for key, offset in data.items():
            if not (isinstance(key, str) and key.isdigit()):
                raise CursorError(f"cursor partition {key!r} is not a partition number")
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise CursorError(
                    f"cursor offset for partition {key} is not a non-negative integer"
                )
            cursor[int(key)] = offset
        return cursor

    def after(self, partition: int, offset: int) -> Cursor:
        """This cursor advanced past one consumed record."""
        advanced = Cursor(self)
        advanced[partition] = max(advanced.get(partition, 0), offset + 1)
        return advanced

    def covers(self, other: Mapping[int, int]) -> bool:
        """True when this position is at or past ``other`` on every partition."""
        return all(self.get(p, 0) >= o for p, o in other.items())

    def merged(self, other: Mapping[int, int]) -> Cursor:
        """Element-wise maximum: everything seen by either position."""
        merged = Cursor(self)
        for p, o in other.items():
            merged[p] = max(merged.get(p, 0), o)
        return merged
