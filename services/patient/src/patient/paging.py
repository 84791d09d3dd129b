"""Opaque keyset cursors: `limit` + `cursor` on every list."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from callcenter_common.problems import ProblemError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *types: type) -> tuple[Any, ...] | None:
    """The key a cursor carries, checked against `types`; 422 naming `cursor` if it is not ours."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(key, list) or len(key) != len(types):
        raise _bad_cursor()
    for value, kind in zip(key, types, strict=True):
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _bad_cursor()
    return tuple(key)


def _bad_cursor() -> ProblemError:
    return ProblemError(
        422, "request.invalid", "The request is not valid", detail="cursor is not valid", field="cursor"
    )
