"""Keyset pagination for every list: `limit` and an opaque `cursor` holding the sort key of the
last row, so pages stay stable while rows are added (ARCHITECTURE.md: lists are paginated)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import ColumnElement, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from callcenter_common.problems import ProblemError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
CursorQuery = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page")]

Key = tuple[Any, ...]
T = TypeVar("T")


def encode_cursor(key: Sequence[Any]) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kinds: Sequence[type]) -> Key | None:
    """The key in `cursor`, converted to `kinds`; 422 naming `cursor` when it is not ours."""
    if cursor is None:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError("wrong shape")
        return tuple(_convert(value, kind) for value, kind in zip(raw, kinds, strict=True))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ProblemError(422, "request.invalid_cursor", "The cursor is not valid", field="query.cursor") from exc


def _convert(value: Any, kind: type) -> Any:
    if kind is datetime:
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError("naive time in cursor")
        return parsed
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not {kind.__name__}")


def after(
    columns: Sequence[InstrumentedAttribute[Any]], key: Key | None, *, descending: bool = False
) -> ColumnElement[bool] | None:
    """The WHERE clause that starts a page after `key` in the order of `columns`."""
    if key is None:
        return None
    # A plain tuple on the right is bound with the columns' types (UTC times on SQLite too).
    left = tuple_(*columns)
    return left < key if descending else left > key


def page_of(rows: Sequence[T], limit: int, key_of: Callable[[T], Sequence[Any]]) -> tuple[list[T], str | None]:
    """Rows were fetched with `limit + 1`: cut to `limit` and say where the next page starts."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(key_of(items[-1])) if len(rows) > limit and items else None
    return items, next_cursor
