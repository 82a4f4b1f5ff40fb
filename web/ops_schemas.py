"""The JSON the operator endpoints answer (/healthz, /readyz, /openapi.json), as pydantic
models: what the OpenAPI document says of them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from web.schemas import Closed, Model
from worker.core.queueing import HEARTBEAT_MAX_AGE_S


class Health(Model):
    status: Literal["ok", "degraded"] = Field(description="ok: Redis, the index, a search worker "
                                              "with a recent heartbeat (`search_workers`)")
    redis: bool
    redis_error: str | SkipJsonSchema[None] = None
    workers: int = Field(ge=0, description="workers registered in Redis (any queue; a killed "
                         "one until its registration lapses)")
    search_workers: int = Field(0, ge=0, description="workers of the search queue with a "
                                f"heartbeat in the last {HEARTBEAT_MAX_AGE_S} s (as /readyz)")
    queue_length: int | None = Field(ge=0)
    catalogue_pairs: int | None = None
    descriptor: str | None = None
    weights: dict[str, Any] | None = Field(None, description="the index's VGG16 weights: id, "
                                           "fingerprint")
    precision: str | None = None
    index_created: str | None = Field(None, description="when the index was built")
    index_updated: str | SkipJsonSchema[None] = Field(None, description="when a catalogue edit "
                                                      "last changed it, if one has")
    generation: str | None = Field(None, description="the current index version (`CURRENT`)")
    index_refused: str | SkipJsonSchema[None] = Field(None, description="search workers that "
                                                      "cannot load it (another precision, a "
                                                      "damaged file) and serve the one before")
    worker_precisions: list[str] = Field([], description="what the search workers run "
                                         "(`PRECISION=auto` chooses per machine)")
    index_error: str | SkipJsonSchema[None] = None


class Check(Closed):
    ok: bool
    reason: str


class Checks(Closed):
    redis: Check
    worker: Check
    index: Check
    output_dir: Check


class Readiness(Closed):
    ready: bool
    checks: Checks


class OpenAPIDocument(Model):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
