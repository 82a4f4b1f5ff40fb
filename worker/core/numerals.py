"""Whole numbers read from what people type (form fields, URLs, env values), in one place:
Python's int() refuses a numeral of more than 4,300 digits, leading zeros counted, with
advice about sys.set_int_max_str_digits that means nothing to a user of the service."""

from __future__ import annotations

MAX_DIGITS = 9  # significant digits read; every bound here is far below 10**9
PAST = 10**MAX_DIGITS  # what a longer numeral reads as: past every bound, sign kept


def whole(text: str, signed: bool = False) -> int | None:
    """The value of an ASCII decimal numeral (spaces around it, leading zeros, a sign where
    `signed`), PAST (or -PAST) for one of more than MAX_DIGITS significant digits, None for
    anything else."""
    text = text.strip()
    negative = signed and text[:1] == "-"
    digits = text[1:] if signed and text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    digits = digits.lstrip("0")
    value = PAST if len(digits) > MAX_DIGITS else int(digits or "0")
    return -value if negative else value
