"""The shapes of the catalogue-edit API (web/designs.py), as pydantic models for the OpenAPI
document."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from web.schemas import Closed, Model, image
from worker.core.catalogue import DESIGN_NAME


class DesignForm(Model):
    """multipart/form-data of POST /api/designs. Any further field is the new design's value
    in that column of the catalogue (`garment=dress`; one line of at most 200 characters,
    no control character nor direction override, else 400 `invalid_column_value`; a column left
    out is empty, one the catalogue lacks is 400 `unknown_column`)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, str] = Field(init=False)  # noqa: RUF012 - pydantic's typed extras
    name: str = Field(pattern=DESIGN_NAME.pattern, description="the new design's name "
                      "(400 `invalid_name` otherwise, 409 `duplicate_name` if taken)")
    front: bytes = image("front")
    back: bytes = image("back")


class DesignEdit(Closed):
    """A catalogue edit, done."""

    name: str
    n_pairs: int = Field(ge=0, description="catalogue size after the edit")


class EditPending(Closed):
    """A catalogue edit still running after the request's wait."""

    id: str
    status: Literal["queued", "started"]
    url: str = Field(description="where the edit's outcome can be read (also `Location`)")


class EditStatus(Closed):
    """A catalogue edit's state; its outcome once it has ended."""

    id: str
    status: Literal["queued", "started", "finished", "failed"]
    result: DesignEdit | None = Field(None, description="the edit done (finished)")
    error: str | None = Field(None, description="why it was not made (failed)")
    reason: str | None = Field(None, description="failed: the code its request would have "
                               "answered: `catalogue_busy`, `edit_lost` or `no_index` (try "
                               "again later, after `make index` for the last) or `edit_failed`")
    retry: bool | None = Field(None, description="failed: whether the same edit may succeed "
                               "later as it is")
