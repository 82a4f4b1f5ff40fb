"""What a valid upload is, for schemathesis. Loaded by the CLI through schemathesis.toml and
by tests/test_ops.py.

- The API's `format: binary` fields are drawings, and a schema cannot say "a decodable JPEG or
  PNG of at least 16 px": schemathesis's own samples (a 1x1 PNG, a PDF, random bytes) are
  refusals the document lists (422, 415), not valid data.
- a box (`front_box`, `back_box`) the schema's pattern allows may still be refused (x0 >= x1,
  too small, no image for its side): such "positive" cases are dropped.
- schemathesis does not check that a "negative" body holding files is really invalid as the
  server reads it (its validator cannot read files): negating one branch of `anyOf: [front
  required, back required]` while the other side is there, or `k` as an empty list (nothing
  sent), yields a valid search; nor that a mutated `filter` value still matches its pattern
  (schemathesis/schemathesis#3603 is the like for a path parameter). Such cases are dropped.
"""

from __future__ import annotations

import io
import json
from typing import Any

import jsonschema_rs
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.transport.serialization import Binary

from worker.core.boxes import parse_box
from worker.core.images import MIN_SIDE


@st.composite
def drawings(draw) -> bytes:
    """A small JPEG or PNG, each side MIN_SIDE to 4 x MIN_SIDE px: a box drawn on a ground of
    another colour (a flat image is refused as blank)."""
    size = (draw(st.integers(MIN_SIDE, 4 * MIN_SIDE)), draw(st.integers(MIN_SIDE, 4 * MIN_SIDE)))
    colour = draw(st.tuples(*[st.integers(0, 255)] * 3))
    img = Image.new("RGB", size, colour)
    img.paste(tuple((c + 128) % 256 for c in colour), (0, 0, size[0] // 2, size[1] // 2))
    out = io.BytesIO()
    img.save(out, draw(st.sampled_from(["PNG", "JPEG"])))
    return out.getvalue()


schemathesis.openapi.format("binary", drawings())


def _readings(value: Any, binary: bool) -> list[Any]:
    """How the server may read one field as sent: a file as a string of its length; a binary
    field sent as text as null (invalid); an empty list or object not at all (no reading);
    a list as its first value (what the form's .get() returns); blank text not at all; text
    also parsed as JSON."""
    if isinstance(value, Binary):
        return ["x" * len(value.data)]
    if binary:
        return [None]
    if isinstance(value, list | dict) and not value:
        return []
    if isinstance(value, list):
        return _readings(value[0], binary)
    if isinstance(value, str) and not value.strip():  # the forms read a blank field as absent
        return []
    if isinstance(value, str):
        try:
            return [value, json.loads(value)]
        except ValueError:
            return [value]
    return [value]


def _list_reading(value: Any) -> list[Any]:
    """How the server reads a repeatable field (`filter`): every value sent, each as the text
    the form carries (JSON for what is not a string), blank ones skipped; none: absent."""
    items = [item if isinstance(item, str) else "x" * len(item.data)
             if isinstance(item, Binary) else json.dumps(item)
             for item in (value if isinstance(value, list) else [value])]
    kept = [item for item in items if item.strip()]
    return [kept] if kept else []


def _valid_as_read(body: dict[str, Any], schema: dict[str, Any]) -> bool:
    validator = jsonschema_rs.validator_for(schema)
    properties = schema.get("properties", {})
    sent: dict[str, Any] = {}
    for name, value in body.items():
        if properties.get(name, {}).get("type") == "array":  # read with getlist: every value
            readings = _list_reading(value)
        else:
            readings = _readings(value, properties.get(name, {}).get("format") == "binary")
        fine = [r for r in readings if not any(
            e.instance_path[:1] == [name] for e in validator.iter_errors({**sent, name: r}))]
        if readings:
            sent[name] = (fine or readings)[0]
    return validator.is_valid(sent)


def _a_box_refused(body: dict[str, Any]) -> bool:
    """A box the schema allows but the contract refuses (x0 >= x1, too small, for a side not
    sent): a schema cannot compare two numbers, so such a case is a refusal, not valid data."""
    for side in ("front", "back"):
        value = body.get(f"{side}_box")
        try:
            if parse_box(value, side) is not None and side not in body:
                return True
        except ValueError:
            return True
    return False


@schemathesis.hook
def filter_case(context, case) -> bool:
    if case.meta is None or not isinstance(case.body, dict):
        return True
    if not case.meta.generation.mode.is_negative:
        return not _a_box_refused(case.body)
    declared = case.operation.get_body_for_media_type(case.media_type)
    schema = getattr(declared, "optimized_schema", None)
    if not isinstance(schema, dict) or "binary" not in str(schema):
        return True
    return not _valid_as_read(case.body, schema)
