"""What a valid upload is, for schemathesis. Loaded by the CLI through schemathesis.toml and
by tests/test_ops.py.

- The API's `format: binary` fields are drawings, and a schema cannot say "a decodable JPEG or
  PNG of at least 16 px": schemathesis's own samples (a 1x1 PNG, a PDF, random bytes) are
  refusals the document lists (422, 415), not valid data.
- schemathesis does not check that a "negative" body holding files is really invalid (its
  validator cannot read them): negating one branch of `anyOf: [front required, back
  required]` while the other side is there yields a valid search. Such cases are dropped.
"""

from __future__ import annotations

import io
from typing import Any

import jsonschema_rs
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.transport.serialization import Binary

from worker.core.images import MIN_SIDE


@st.composite
def drawings(draw) -> bytes:
    """A small solid-colour JPEG or PNG, each side MIN_SIDE to 4 x MIN_SIDE px."""
    size = (draw(st.integers(MIN_SIDE, 4 * MIN_SIDE)), draw(st.integers(MIN_SIDE, 4 * MIN_SIDE)))
    colour = draw(st.tuples(*[st.integers(0, 255)] * 3))
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, draw(st.sampled_from(["PNG", "JPEG"])))
    return out.getvalue()


schemathesis.openapi.format("binary", drawings())


def _as_validated(body: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The body as its schema sees it: a file as a string of its length; a binary field sent
    as anything but a file as null (invalid)."""
    properties = schema.get("properties", {})
    out = {}
    for name, value in body.items():
        if isinstance(value, Binary):
            out[name] = "x" * len(value.data)
        elif properties.get(name, {}).get("format") == "binary":
            out[name] = None
        else:
            out[name] = value
    return out


@schemathesis.hook
def filter_case(context, case) -> bool:
    if case.meta is None or not case.meta.generation.mode.is_negative \
            or not isinstance(case.body, dict):
        return True
    declared = case.operation.get_body_for_media_type(case.media_type)
    schema = getattr(declared, "optimized_schema", None)
    if not isinstance(schema, dict) or "binary" not in str(schema):
        return True
    return not jsonschema_rs.validator_for(schema).is_valid(_as_validated(case.body, schema))
