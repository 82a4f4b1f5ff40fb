"""A part of a drawing to search by (`front_box`, `back_box`): its text form and its checks,
shared by the search options and the web's form schema."""

from __future__ import annotations

import math
import re

from pydantic import Field

from worker.core.images import Box

MIN_BOX = 0.05  # a box is at least this fraction of the drawing's width and of its height
BOX_FORMAT = "x0,y0,x1,y1"
FRACTION = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"  # a plain decimal: no sign, no exponent
BOX_TEXT = " *, *".join([f"({FRACTION})"] * 4)  # what a box given as text may be


def parse_box(value: object, field: str) -> Box | None:
    """`x0,y0,x1,y1` (a string or four numbers) as fractions of the drawing's width and height,
    0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, each side at least MIN_BOX; blank: None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = re.fullmatch(BOX_TEXT, value.strip()) if isinstance(value, str) else None
    parts: object = (text.groups() if text else ()) if isinstance(value, str) else value
    try:
        box = tuple(float(p) for p in parts)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ValueError(f"{field} must be four numbers {BOX_FORMAT}, got {value!r}")
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError(f"{field} must have 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
                         f"(fractions of the drawing), got {value!r}")
    # rounded: 0.0813 - 0.0313 is 0.049999999999999996 in binary floats
    if round(x1 - x0, 9) < MIN_BOX or round(y1 - y0, 9) < MIN_BOX:
        raise ValueError(f"{field} is too small: each side must be at least {MIN_BOX:g} of the "
                         f"drawing, got {value!r}")
    return x0, y0, x1, y1


def box_field(side: str) -> object:
    return Field(None, description=f"search by this part of the {side} drawing only: "
                 f"`{BOX_FORMAT}` as fractions of its width and height (0 <= x0 < x1 <= 1, "
                 f"0 <= y0 < y1 <= 1, each side at least {MIN_BOX:g}); null: the whole drawing")
