"""A query string's whole-number arguments (`page`, `per_page`), refused saying which and why."""

from __future__ import annotations

from flask import request

from web.errors import RequestRefused
from worker.core.numerals import whole


def int_arg(name: str, default: int, high: int) -> int:
    """`?name=` as a whole number from 1 to `high` (absent: `default`); 400 `invalid_<name>`."""
    raw = request.args.get(name, str(default))  # given but blank is refused, as the schema says
    value = whole(raw)  # not "²" or "٣"
    if value is None or not 1 <= value <= high:
        raise RequestRefused(400, f"invalid_{name}",
                             f"{name} must be a whole number from 1 to {high}, got {raw[:20]!r}")
    return value
