"""The shapes of the collection-check API (web/checks.py), as pydantic models for the OpenAPI
document; a design's hits are a search's (`HitView`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from web.schemas import (
    _WS,
    IMAGE_LIMITS,
    SEARCH_FILTER,
    Closed,
    FilterField,
    HitView,
    Model,
    SearchId,
    WaitQuery,
)
from worker.core.contract import (
    DEFAULT_FRONT_WEIGHT,
    DEFAULT_K,
    K_MAX,
    LIST_ORDER,
    SIDE_COPIES,
    DesignStatus,
    ListOrder,
    Side,
    SideCopy,
)
from worker.core.filters import MAX_FILTER_FIELDS


class CheckForm(Model):
    """multipart/form-data of POST /api/checks: the collection and a search's options."""

    collection: bytes = Field(json_schema_extra={"format": "binary", "minLength": 1},
                              description="a ZIP holding `pairs.csv` (columns name,front,back; "
                              "one design a row, image paths relative to it) and the drawings it "
                              "names, each as a search's: " + IMAGE_LIMITS)
    k: Annotated[int, Field(ge=1, le=K_MAX)] | Literal[""] = Field(DEFAULT_K, description=(
        "hits per design, spaces around it ignored; blank: the default (400 `invalid_k` "
        "otherwise)"))
    front_weight: Annotated[float, Field(ge=0, le=1)] | Literal[""] = Field(
        DEFAULT_FRONT_WEIGHT, description="as for a search (400 `invalid_front_weight` otherwise)")
    sides: str = Field("known", pattern=f"^{_WS}*(known|unknown)?{_WS}*$",
                       description="as for a search (400 `invalid_sides` otherwise)")
    filter: list[FilterField] = Field([], max_length=MAX_FILTER_FIELDS, description=SEARCH_FILTER)


class CheckQuery(WaitQuery):
    designs: Literal["true", "false"] = Field("true", description="`false`: leave `designs` "
                                              "out, for a progress bar (a finished check of "
                                              "500 designs with 100 hits each is 18 MB of JSON)")


class CheckCreated(Closed):
    """202 to POST /api/checks."""

    id: SearchId
    status: Literal["queued"]
    url: str = Field(description="where to poll the check, the same as the Location header")


class CheckedDesignView(Closed):
    """One design of a check: its name in pairs.csv, and its hits once checked."""

    name: str
    status: DesignStatus = Field(description="`queued` until checked; `failed` when a drawing "
                                 "was missing or refused (or checking it failed)")
    error: str | None = Field(None, description="only when failed: why, for people")
    results: list[HitView] = Field(description="as a search's results, in `order`, at most "
                                   "k; empty until finished")
    order: ListOrder = Field("score", description=LIST_ORDER)
    outline_only: list[Side] = Field(
        description="its sides that are line sketches, matched by the garment's outline alone, "
        "as a search's: when every side that counts (weight above 0) is one, its hits get no "
        "verdict (and no similarity), whatever they score")
    cropped: list[Side] = Field(default_factory=list, description=(
        "its sides read as crops of a design (details), compared without their outline, as "
        "a search's"))
    turned: dict[Side, int] = Field(default_factory=dict, description=(
        "its sides scanned sideways and turned upright before the search, as a search's"))
    side_copies: list[SideCopy] = Field(default_factory=list, description=SIDE_COPIES)
    image_url: str | None = Field(description="the design as the model saw it, front | back "
                                  "(JPEG); null until finished, and for a failed design")
    catalogue: str | None = Field(None, description="the catalogue version (index generation: "
                                  "when it was written, then a tag) it was compared with; null "
                                  "until finished, and for a failed design")


class CollectionCheck(Closed):
    """A collection check: how far it is, and each design in pairs.csv order."""

    id: SearchId
    status: Literal["queued", "running", "finished"] = Field(
        description="`finished` once every design is finished or failed")
    done: int = Field(ge=0, description="designs finished or failed")
    total: int = Field(ge=1, description="designs (rows of pairs.csv)")
    url: str
    report_url: str = Field(description="the CSV report (409 until finished)")
    cancelled: bool = Field(description="cancelled (DELETE): the designs it had not started "
                            "are failed, their `error` saying so")
    designs_ahead: int | None = Field(None, ge=0, description="while queued: about how many "
                                      "designs of other checks are checked before this one "
                                      "starts (searches go first too); left out otherwise")
    k: int
    front_weight: float
    sides_unknown: bool
    filters: dict[str, list[str]] = Field(description="the filters every design was searched "
                                          "with: column -> values allowed ({}: none)")
    designs: list[CheckedDesignView] | None = Field(None, description="left out with "
                                                    "`?designs=false`")
    catalogues: list[str] | None = Field(None, description="the catalogue versions the "
                                         "finished designs were compared with, oldest first: "
                                         "the one the check's first design saw, kept for the "
                                         "check through edits and re-indexes; more than one "
                                         "only if it could not be kept (each design's "
                                         "`catalogue` says which); left out with "
                                         "`?designs=false`")


REPORT_CSV = (  # the report's columns, as the API document tells them
    "CSV: design,rank,match,similarity,verdict,front_score,"
    "back_score,error,filters,swapped,outline_only,score,"
    "front_weight,catalogue_version,side_copies,order,turned; "
    "a row per "
    "design and hit, one row with its error for a design that "
    "failed; `filters`: the check's `filter` fields, "
    "`; `-separated (blank: none); `swapped`: true/false, as a "
    "hit's; `outline_only`: `front`, `back`, `front back` or "
    "blank, as the design's; `score`, the hit's; `front_weight`, "
    "the check's; `catalogue_version`, the catalogue version the "
    "design was compared with (as its `catalogue`); "
    "`side_copies`, the design's sides that alone copy a "
    "catalogue design (`front: <name> <verdict> <similarity>`, "
    "`; `-separated, as its `side_copies`); `order`, the "
    "design's `order` (`score` or `design`; blank without "
    "hits); `turned`, the design's sides scanned sideways and "
    "turned upright (`front: 270; back: 90`, `; `-separated, as "
    "its `turned`; blank: none); then the "
    "catalogue's further columns the hits "
    "carry (garment, season, ...; one named like ours: "
    "`catalogue:<name>`)"
)
