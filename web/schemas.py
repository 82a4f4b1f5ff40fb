"""The JSON API's request and response shapes, as pydantic models: the OpenAPI document
(web/apidoc.py) is generated from them and from the web<->worker contract.

They describe; they do not validate requests (web/submissions.py and web/designs.py do,
with their own error codes). Search results reuse `worker.core.contract` directly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from web.searches import MAX_WAIT_S, SEARCH_ID, SearchStatus
from worker.core.boxes import BOX_FORMAT, BOX_TEXT, MIN_BOX
from worker.core.contract import (
    DEFAULT_FRONT_WEIGHT,
    DEFAULT_K,
    K_MAX,
    Hit,
    SearchResult,
    Verdict,
)
from worker.core.duplicates import DEFAULT_MIN_VERDICT
from worker.core.filters import MAX_FILTER_CHARS, MAX_FILTER_FIELDS
from worker.core.images import ACCEPTED_FORMATS, MAX_ASPECT, MIN_SIDE

SearchId = Annotated[str, Field(pattern=SEARCH_ID.pattern, description="32 lowercase hex digits")]
# What str.strip() strips (the form's fields are read stripped), as a regex class: not \\s,
# whose ECMA meaning differs from Python's.
_WS = "[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"


def _not(also: str) -> str:
    """A regex class: neither what str.strip() strips nor `also`."""
    return f"[^{_WS[1:-1]}{also}]"


# a filter field: blank (skipped), or a column with something not blank before its first colon
# and a value with something not blank after it
FilterField = Annotated[str, Field(max_length=MAX_FILTER_CHARS, pattern=(
    f"^{_WS}*$|^[^:]*{_not(':')}[^:]*:[\\s\\S]*{_not(',')}[\\s\\S]*$"))]
IMAGE_LIMITS = (f"{' or '.join(ACCEPTED_FORMATS)} only, checked by content whatever the name or "
                f"part Content-Type; not empty; each side at least {MIN_SIDE} px, the long side "
                f"at most {MAX_ASPECT:g}x the short; one frame")


FILTER = ("repeatable `column:value[,value...]`: only designs whose pairs.csv column has one "
          "of the values (values OR'ed; columns AND'ed; a column given twice: its values "
          "OR'ed). 400 `invalid_filter` when malformed, `unknown_filter` naming a column or "
          "value the catalogue lacks")
SEARCH_FILTER = FILTER + ", `no_design_passes` when no design passes them all"


def _drop_null_default(schema: dict[str, Any]) -> None:
    """An omittable field is absent from the JSON, never null: say so in the schema."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


class Model(BaseModel):
    model_config = ConfigDict(json_schema_extra=_drop_null_default)


class Closed(Model):
    """A JSON object with exactly these fields."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_null_default)


AS_TEXT = " (400 `invalid_{side}` when sent as a text field beside the other side's file)"


def image(side: str, extra: str = "", **default: Any) -> Any:
    return Field(**default, json_schema_extra={"format": "binary", "minLength": 1},
                 description=f"the {side} drawing, a file: {IMAGE_LIMITS}{extra}")


def _a_side(schema: dict[str, Any]) -> None:
    _drop_null_default(schema)
    schema["anyOf"] = [{"required": ["front"]}, {"required": ["back"]}]


def box_form(side: str) -> Any:
    return Field("", pattern=f"^{_WS}*({BOX_TEXT})?{_WS}*$", description=(
        f"search by this part of the {side} drawing only: `{BOX_FORMAT}` as fractions of its "
        f"width and height, 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, each side at least "
        f"{MIN_BOX:g}; needs the {side} image (400 `invalid_{side}_box` otherwise); blank: "
        "the whole drawing"))


class SearchForm(Model):
    """multipart/form-data of POST /api/searches: at least one side (400 `missing_images`)."""

    model_config = ConfigDict(json_schema_extra=_a_side)

    front: bytes | SkipJsonSchema[None] = image("front", AS_TEXT.format(side="front"), default=None)
    back: bytes | SkipJsonSchema[None] = image("back", AS_TEXT.format(side="back"), default=None)
    k: Annotated[int, Field(ge=1, le=K_MAX)] | Literal[""] = Field(DEFAULT_K, description=(
        "how many designs to return, spaces around it ignored; blank (a cleared form field): "
        "the default (400 `invalid_k` otherwise)"))
    front_weight: Annotated[float, Field(ge=0, le=1)] | Literal[""] = Field(
        DEFAULT_FRONT_WEIGHT, description="weight of the front score, the back gets 1 - this; unused "
        "for a one-sided query; spaces around it ignored; blank: the default (400 "
        "`invalid_front_weight` otherwise)")
    sides: str = Field("known", pattern=f"^{_WS}*(known|unknown)?{_WS}*$", description=(
        "`known` (or blank) or `unknown`: also match the query's front against each design's "
        "back and the other way round (400 `invalid_sides` otherwise)"))
    front_box: str = box_form("front")
    back_box: str = box_form("back")
    filter: list[FilterField] = Field([], max_length=MAX_FILTER_FIELDS, description=SEARCH_FILTER)


class SearchCreated(Closed):
    """202 to POST /api/searches."""

    id: SearchId
    status: Literal["queued", "finished"] = Field(
        description="`queued` for a new search; `finished` when an identical search (same "
                    "bytes, options and index) has finished: the new search, with its own id, "
                    "is a copy of that result, made without recomputation")
    url: str = Field(description="where to poll the search, the same as the Location header")


class WaitQuery(Model):
    wait: float = Field(0, ge=0, le=MAX_WAIT_S, description="hold the answer up to this many seconds "
                        "until the search is finished or failed (long poll; 0: at once)")


class HitView(Hit):
    """A hit as the API shows it: the contract's `Hit` and the URLs of its two images."""
    model_config = ConfigDict(extra="forbid")

    front_url: str = Field(description="`/database/<front>`")
    back_url: str = Field(description="`/database/<back>`")


def _when_finished() -> dict[str, Any]:
    """The contract's `SearchResult` fields as the API shows them: only once finished, `results`
    with URLs, no `image` (its URL is `image_url`; the hits as CSV: `csv_url`)."""
    fields: dict[str, Any] = {
        name: (info.annotation | SkipJsonSchema[None], Field(None, description=info.description))
        for name, info in SearchResult.model_fields.items() if name not in ("results", "image")}
    fields["results"] = (list[HitView] | SkipJsonSchema[None],
                         Field(None, description="in the `order` given, at most k"))
    for name, what in (("image_url", "the rendered grid (result.jpg)"),
                       ("csv_url", "the hits as CSV (results.csv)")):
        fields[name] = (str | SkipJsonSchema[None], Field(None, description=what))
    return fields


class _SearchBase(Closed):
    id: SearchId
    status: SearchStatus
    stage: str | None = Field(description="queued, starting, preprocess, extract, search, "
                              "render (the last stage reached)")
    url: str
    queue_position: int | None = Field(None, ge=0, description="only while queued: 0 = next, null: taken")
    error: str | SkipJsonSchema[None] = Field(None, description="only when failed: why")
    searched_with: str | SkipJsonSchema[None] = Field(None, description="the catalogue design "
                                                      "whose drawings were searched with, if so")


Search = create_model("Search", __base__=_SearchBase, __doc__="A search: its status and stage; "
                      "its options (as asked until it finishes: k, front_weight, sides_unknown, "
                      "the boxes, filters); its results and timings once finished.",
                      **_when_finished())


class Error(Closed):
    """Every refusal."""

    error: str = Field(description="a short machine-readable code, e.g. `missing_images`, "
                       "`invalid_k`, `unsupported_format`, `corrupt`, `too_small`, `blank`, `too_large`, "
                       "`too_many_pixels`, `not_found`, `not_ready`, `search_failed`, `no_worker`, "
                       "`queue_full`, `queue_unavailable`, `unauthorized`, `invalid_filter`, "
                       "`unknown_filter`, `no_design_passes`, `unsupported_compression`, "
                       "`no_index`, `cross_site`, `redis_full`")
    message: str = Field(description="what went wrong, for people")


class DuplicatesQuery(Model):
    min_verdict: Verdict = Field(DEFAULT_MIN_VERDICT, description="the least serious verdict that "
                                 "joins two designs: `copy`, `near-duplicate` or `similar` (400 "
                                 "`invalid_min_verdict` otherwise)")


class DuplicatePair(Closed):
    a: str = Field(description="a design's name")
    b: str = Field(description="the other design's name (later in pairs.csv)")
    similarity: int = Field(ge=0, le=100, description="0-100 on the list's own scale: a "
                            "search with one of the two designs may give another figure")
    verdict: Verdict = Field(description="on its score and a nearest design's lead (docs/quality.md)")


class DuplicateGroup(Closed):
    designs: list[str] = Field(min_length=2, description="names, in catalogue order")
    pairs: list[DuplicatePair] = Field(min_length=1, description="the pairs joining them, "
                                       "most similar first")
    sketches: list[str] = Field(description="its designs drawn as line sketches on both sides "
                                "(in a catalogue of coloured drawings), in catalogue order: "
                                "their own lead over their other look-alikes does not count "
                                "in their pairs' verdicts, since every sketch of a garment "
                                "draws the same empty garment")


class Duplicates(Closed):
    """Connected groups of catalogue designs whose pairs are judged at least `min_verdict`."""

    groups: list[DuplicateGroup] = Field(description="the group with the most similar pair first")
