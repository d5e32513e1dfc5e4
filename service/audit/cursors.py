"""Keyset pagination of the audit log on `seq`, with opaque cursor tokens.

A page is "the next N events after #s" or "the N events before #s" in chain order, never "page k":
events appended while someone pages through the log only ever come after the rows already seen, so
walking the `next` cursors visits every matching event exactly once. The token is URL-safe base64
of a small JSON object; clients must treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db.models import QuerySet

from service.common.errors import ApplicationError

MAX_TOKEN_LENGTH = 200
T = TypeVar("T")


class InvalidCursor(ApplicationError):
    status = 400
    code = "invalid_cursor"
    title = "Invalid cursor"


@dataclass(frozen=True)
class Cursor:
    """`after` an event (the next page) or `before` one (the previous page); `before` None is the
    last page (the newest events)."""

    direction: str  # "after" | "before"
    seq: int | None

    def encode(self) -> str:
        raw = json.dumps({"d": self.direction[0], "s": self.seq}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        problem = InvalidCursor("The cursor is not valid: use the next or previous cursor from a listing, or leave it out to start at the first event.")
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise problem
        try:
            value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise problem from None
        if not isinstance(value, dict) or set(value) != {"d", "s"} or value["d"] not in ("a", "b"):
            raise problem
        direction = "after" if value["d"] == "a" else "before"
        seq = value["s"]
        valid = (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0) or (seq is None and direction == "before")
        if not valid:
            raise problem
        return cls(direction, seq)


LAST_PAGE = Cursor("before", None)


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    next: Cursor | None  # None: no later matching events (yet)
    previous: Cursor | None  # None: this is the first page

    @property
    def next_token(self) -> str | None:
        return self.next.encode() if self.next else None

    @property
    def previous_token(self) -> str | None:
        return self.previous.encode() if self.previous else None


def keyset_page(rows: QuerySet, *, cursor: Cursor | None, size: int) -> Page:
    """One page of `rows` (a queryset with a unique `seq`), in ascending `seq` order."""
    if cursor is None or cursor.direction == "after":
        after = cursor.seq if cursor else None
        window = rows if after is None else rows.filter(seq__gt=after)
        found = list(window.order_by("seq")[: size + 1])
        page, more = found[:size], len(found) > size
        earlier = after is not None and rows.filter(seq__lte=after).exists()
        next_cursor = Cursor("after", page[-1].seq) if more else None
        if not earlier:
            previous_cursor = None
        else:
            previous_cursor = Cursor("before", page[0].seq if page else after + 1)
        return Page(page, next_cursor, previous_cursor)
    before = cursor.seq
    window = rows if before is None else rows.filter(seq__lt=before)
    found = list(window.order_by("-seq")[: size + 1])
    page, more = found[:size][::-1], len(found) > size
    later = before is not None and rows.filter(seq__gte=before).exists()
    previous_cursor = Cursor("before", page[0].seq) if more else None
    if not later:
        next_cursor = None
    else:
        next_cursor = Cursor("after", page[-1].seq if page else before - 1)
    return Page(page, next_cursor, previous_cursor)
