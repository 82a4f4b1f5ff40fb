"""The contract between the web and the worker: what a search asks and what it answers.

`SearchOptions` is validated once, where a search enters (the web form, the CLI); a `SearchRequest`
travels in the job as kwargs, rebuilt by the worker with the same validation; the worker returns a
`SearchResult` as a dict (RQ stores it), read back by the web with the same model. OpenAPI: from these.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from worker.core.boxes import box_field, parse_box
from worker.core.filters import filters_field
from worker.core.images import Box
from worker.core.numerals import whole

SIDES = ("front", "back")
Side = Literal["front", "back"]
RESUBMIT = "please submit the search again"
ABANDONED = f"the worker stopped while running this search; {RESUBMIT}"
K_MAX = 100
DEFAULT_K = 20
DEFAULT_FRONT_WEIGHT = 0.5
GRID_COLUMNS = 5  # pairs a row on the rendered grid (the search page links each cell)

Verdict = Literal["copy", "near-duplicate", "similar"]
ListOrder = Literal["score", "design"]
LIST_ORDER = ("`score`: best score first; `design`: the first hit was judged a copy or "
              "near-duplicate, and the hits after those so judged are ordered by design (the "
              "same garment and pattern before the same colours), so a lower score may rank "
              "higher")
Score = Annotated[float, Field(description="cosine-based score, higher is closer")]


class SearchOptions(BaseModel):
    """How to search: how many hits, how much the front counts, whether sides are known."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: int = Field(DEFAULT_K, description=f"hits to return, 1-{K_MAX}")
    front_weight: float = Field(DEFAULT_FRONT_WEIGHT,
                                description="weight of the front's score, 0-1 (back: 1 - this)")
    sides_unknown: bool = Field(False, description="match each drawing against both sides of "
                                "every design and keep the better assignment")
    front_box: Box | None = box_field("front")
    back_box: Box | None = box_field("back")

    @field_validator("front_box", "back_box", mode="before")
    @classmethod
    def _box(cls, value: object, info) -> Box | None:
        return parse_box(value, info.field_name)
    filters: dict[str, list[str]] = Field(default_factory=dict, description="only designs "
                                          "whose column has one of the values, for every "
                                          "column given (worker.core.filters)")

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, value: object) -> dict[str, list[str]]:
        return filters_field(value)

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, value: object) -> int:
        k = value if type(value) is int else whole(value, True) if isinstance(value, str) else None
        if k is None:
            raise ValueError(f"k must be a whole number, got {str(value)[:40]!r}")
        if not 1 <= k <= K_MAX:
            raise ValueError(f"k must be between 1 and {K_MAX}, got {str(value).strip()[:12]}")
        return k

    @field_validator("front_weight", mode="before")
    @classmethod
    def _front_weight(cls, value: object) -> float:
        try:
            weight = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"front_weight must be a number, got {value!r}") from None
        if not 0.0 <= weight <= 1.0:  # also refuses nan
            raise ValueError(f"front_weight must be between 0 and 1, got {value}")
        return weight


SEARCH_ID = r"^[0-9a-f]{32}$"  # 122 random bits, hex: also safe as a file name
UPLOAD_NAME = r"^[0-9a-f]{32}-(front|back)\.(jpg|png)$"  # the only names uploads are stored under


class SearchRequest(SearchOptions):
    """One queued search: its id, the stored upload names of its sides, and its options."""

    search_id: Annotated[str, Field(pattern=SEARCH_ID)]
    front: Annotated[str, Field(pattern=UPLOAD_NAME)] | None = None
    back: Annotated[str, Field(pattern=UPLOAD_NAME)] | None = None

    @model_validator(mode="after")
    def _a_side(self) -> SearchRequest:
        if self.front is None and self.back is None:
            raise ValueError("a search needs a front image, a back image, or both")
        for side, name, box in (("front", self.front, self.front_box),
                                ("back", self.back, self.back_box)):
            if box is not None and name is None:
                raise ValueError(f"{side}_box was given but there is no {side} image")
        return self

    @property
    def boxes(self) -> tuple[Box | None, Box | None]:
        """(front, back) boxes to crop each upload to; None: the whole drawing."""
        return self.front_box, self.back_box

    @property
    def uploads(self) -> tuple[str | None, str | None]:
        """(front, back) upload names; None for a side the query does not have."""
        return self.front, self.back

    def job_kwargs(self) -> dict:
        """The request as the job's kwargs (plain values: RQ stores them)."""
        return self.model_dump()


class Hit(BaseModel):
    """One catalogue design in a result, in the result's `order`."""

    rank: int = Field(ge=1, description="1 is the closest design (the result's `order` says "
                      "how the rest follow)")
    name: str
    score: Score
    front_score: float | None = Field(description="null for a side the query did not have")
    back_score: float | None = Field(description="null for a side the query did not have")
    swapped: bool = Field(description="with sides=unknown: the query's front matched the "
                          "design's back")
    front: str = Field(description="catalogue path of the design's front")
    back: str = Field(description="catalogue path of the design's back")
    verdict: Verdict | None = Field(None, description="`copy`, `near-duplicate` or `similar` "
                                    "(thresholds calibrated for the descriptor, in the index's "
                                    "manifest); null below them")
    similarity: int | None = Field(None, ge=0, le=100, description="0-100, the score mapped "
                                   "through the same thresholds (similar 50, near-duplicate 75, "
                                   "copy 90) and rounded down; null without thresholds")
    columns: dict[str, str] = Field(default_factory=dict, description="the design's further "
                                    "pairs.csv columns (garment, season, ...)")


class SideCopy(BaseModel):
    """One side of a two-sided query that, searched alone, is judged a copy or near-duplicate
    of a catalogue design's drawing: a new design may copy one design's front and another's
    back, and the pair's score, which averages the sides, judges neither."""

    side: Side = Field(description="the query's side")
    name: str = Field(description="the catalogue design its drawing copies")
    verdict: Literal["copy", "near-duplicate"] = Field(description="as a search by this side "
                                                       "alone would judge its first hit")
    similarity: int = Field(ge=0, le=100)
    score: Score
    swapped: bool = Field(False, description="with sides=unknown: matched the design's other "
                          "side")


SIDE_COPIES = ("each side of a two-sided query searched alone, where that finds a copy or "
               "near-duplicate of a catalogue design's drawing (a design made of two designs' "
               "sides); both sides weighted above 0 only")


class SearchResult(BaseModel):
    """What a finished search returns (the job's return value)."""

    results: list[Hit]
    side_copies: list[SideCopy] = Field(default_factory=list, description=SIDE_COPIES)
    order: ListOrder = Field("score", description=LIST_ORDER)
    image: str = Field(description="file name of the rendered grid")
    k: int
    front_weight: float = Field(description="the front's weight as applied: as asked with "
                                "both sides, 1 or 0 with only the front or the back")
    sides_unknown: bool = False
    front_box: Box | None = box_field("front")
    back_box: Box | None = box_field("back")
    filters: dict[str, list[str]] = Field(default_factory=dict, description="the filters "
                                          "applied before ranking: column -> values allowed")
    outline_only: list[Side] = Field(default_factory=list, description="the query's sides that "
                                     "are line sketches, matched by their outline alone (no "
                                     "verdict when every side weighted above 0 is one)")
    cropped: list[Side] = Field(default_factory=list, description="the query's sides read as "
                                "crops of a design (details), compared without their outline")
    turned: dict[Side, int] = Field(default_factory=dict, description="sides scanned sideways, "
                                    "turned upright before the search: side -> degrees counter-clockwise")
    timings: dict[str, int | float] = Field(default_factory=dict, description="milliseconds "
                                            "per stage, and batch size")
    descriptor: str | None = None
    weights: str | None = Field(None, description="VGG16 weights id, e.g. `imagenet`")
    catalogue: str | None = Field(None, description="the catalogue version searched")


CHECK_UPLOAD_NAME = r"^[0-9a-f]{32}-r[0-9]{1,6}-(front|back)\.png$"  # <check id>-r<row>-<side>
DesignStatus = Literal["queued", "finished", "failed"]


class ChunkRow(BaseModel):
    """One design of a check's chunk: its row in pairs.csv and its stored uploads."""

    row: int = Field(ge=0)
    name: str
    front: Annotated[str, Field(pattern=CHECK_UPLOAD_NAME)] | None = None
    back: Annotated[str, Field(pattern=CHECK_UPLOAD_NAME)] | None = None


class CheckChunk(SearchOptions):
    """A few designs of a collection check, run through the model in one pass: one job on
    the checks queue. The options are the check's, as a search's."""

    check_id: Annotated[str, Field(pattern=SEARCH_ID)]
    rows: list[ChunkRow] = Field(min_length=1)

    def job_kwargs(self) -> dict:
        return self.model_dump()


class CheckedDesign(BaseModel):
    """How one design of a collection fared: its hits (as a search's), or why it failed."""

    name: str
    status: DesignStatus
    error: str | None = Field(None, description="only when failed: why, for people")
    results: list[Hit] = Field(default_factory=list, description="in `order`, at most k")
    order: ListOrder = "score"  # as a search's
    outline_only: list[Side] = Field(default_factory=list)  # as a search's
    cropped: list[Side] = Field(default_factory=list)  # as a search's
    turned: dict[Side, int] = Field(default_factory=dict)  # as a search's
    side_copies: list[SideCopy] = Field(default_factory=list)  # as a search's
    catalogue: str | None = None  # the index generation it was compared with (once finished)


def problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, message for people) of each refusal in a validation error."""
    fields = [".".join(str(part) for part in err["loc"]) or "request" for err in exc.errors()]
    causes = [(err.get("ctx") or {}).get("error") for err in exc.errors()]
    return [(field, str(cause) if cause is not None else f"{field}: {err['msg']}")
            for field, cause, err in zip(fields, causes, exc.errors(), strict=True)]


def rounded(value: float | None, digits: int = 6) -> float | None:
    """A score as stored in results (None stays None, nan never occurs)."""
    return None if value is None or math.isnan(value) else round(value, digits)
