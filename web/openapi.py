"""The OpenAPI 3.0 description of the JSON API, written by hand to match `web/` exactly.

`tests/test_ops.py` fuzzes the app against it (schemathesis) and validates real responses
(queued, finished, failed searches) against it, so a change to the API that is not made
here too fails the tests.
"""

from __future__ import annotations

from copy import deepcopy

from web.api import MAX_WAIT_S
from web.designs import EDIT_WAIT_S

SEARCH_ID = {"type": "string", "example": "3f2c9a0e7b5d4c1f8e6a2b9d0c7e5f3a",
             "description": "the id the submission returned (32 lowercase hex digits); any other "
                            "string, an unknown or an expired id is 404"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                               "schema": {"type": "integer", "minimum": 0}}}
STAGES = "queued, preprocess, extract, search, render (the last stage reached)"


def _error(description: str, *, retry: bool = False) -> dict:
    response = {"description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if retry:
        response["headers"] = deepcopy(RETRY_AFTER)
    return response


def _edit_responses(done_code: str, done: str) -> dict:
    """Responses both catalogue edits share: done, still running, auth, unavailable."""
    return {
        done_code: {"description": done, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/DesignEdit"}}}},
        "202": {"description": f"not yet {done} after {EDIT_WAIT_S} s", "content": {
            "application/json": {"schema": {"type": "object"}}}},
        "401": _error("missing or wrong bearer token"),
        "403": _error("editing is disabled (no ADMIN_TOKEN on the server)"),
        "503": _error("no index, no worker, a full queue or no Redis", retry=True),
    }


UNAVAILABLE = _error("Redis (the queue and the results) is unreachable; retry after Retry-After "
                     "seconds (`queue_unavailable`)", retry=True)

SCHEMAS: dict = {
    "Error": {
        "type": "object", "required": ["error", "message"], "additionalProperties": False,
        "properties": {
            "error": {"type": "string", "description": "a short machine-readable code, e.g. "
                      "`missing_images`, `invalid_k`, `unsupported_format`, `corrupt`, `too_large`, "
                      "`too_many_pixels`, `not_found`, `not_ready`, `search_failed`, `no_worker`, "
                      "`queue_full`, `queue_unavailable`"},
            "message": {"type": "string", "description": "what went wrong, for people"},
        },
    },
    "DesignEdit": {
        "type": "object", "required": ["name", "n_pairs"], "additionalProperties": False,
        "properties": {"name": {"type": "string"},
                       "n_pairs": {"type": "integer", "description": "catalogue size after"}},
    },
    "SearchCreated": {
        "type": "object", "required": ["id", "status", "url"], "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "status": {"type": "string", "enum": ["queued", "started", "finished"],
                       "description": "`queued` for a new search; an identical resubmission "
                                      "is answered with the earlier search and its status"},
            "url": {"type": "string", "description": "where to poll the search "
                    "(`/api/searches/{id}`), the same as the Location header"},
        },
    },
    "Hit": {
        "type": "object", "additionalProperties": False,
        "required": ["rank", "name", "score", "front_score", "back_score", "swapped", "front",
                     "back", "front_url", "back_url"],
        "properties": {
            "rank": {"type": "integer", "minimum": 1, "description": "1 = most similar"},
            "name": {"type": "string", "description": "the design's name in pairs.csv"},
            "score": {"type": "number", "description": "front_weight * front_score + "
                      "(1 - front_weight) * back_score; the one side's score for a one-sided query"},
            "front_score": {"type": "number", "nullable": True,
                            "description": "cosine similarity of the query front (null when the "
                                           "query had no front)"},
            "back_score": {"type": "number", "nullable": True,
                           "description": "cosine similarity of the query back (null when the "
                                          "query had no back)"},
            "swapped": {"type": "boolean", "description": "sides=unknown only: the query's front "
                        "matched this design's back (and the other way round)"},
            "front": {"type": "string", "description": "image path relative to the catalogue"},
            "back": {"type": "string", "description": "image path relative to the catalogue"},
            "front_url": {"type": "string", "description": "`/database/<front>`"},
            "back_url": {"type": "string", "description": "`/database/<back>`"},
        },
    },
    "Timings": {
        "type": "object",
        "description": "milliseconds per stage; `forward_ms`: the forward pass inside "
                       "`extract_ms`, only for the search that ran it (for its whole batch); "
                       "`batch_images`: how many images that pass took (a count)",
        "additionalProperties": {"type": "number"},
        "properties": {name: {"type": "number", "minimum": 0} for name in
                       ("queue_wait_ms", "preprocess_ms", "extract_ms", "forward_ms",
                        "search_ms", "render_ms", "total_ms", "batch_images")},
    },
    "Search": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "status", "stage", "url"],
        "description": "`queue_position` only while queued; `results`, `timings`, `k`, "
                       "`front_weight`, `sides_unknown`, `descriptor`, `weights` and `image_url` "
                       "only when finished; `error` only when failed",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "status": {"type": "string", "enum": ["queued", "started", "finished", "failed"]},
            "stage": {"type": "string", "nullable": True, "description": STAGES},
            "url": {"type": "string"},
            "queue_position": {"type": "integer", "minimum": 0, "nullable": True,
                               "description": "0 = next; null when not in the queue itself"},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"},
                        "description": "best first, at most k"},
            "timings": {"$ref": "#/components/schemas/Timings"},
            "k": {"type": "integer", "minimum": 1, "maximum": 100},
            "front_weight": {"type": "number", "minimum": 0, "maximum": 1},
            "sides_unknown": {"type": "boolean"},
            "descriptor": {"type": "string", "description": "e.g. `flatten`"},
            "weights": {"type": "string", "description": "VGG16 weights id, e.g. `imagenet`"},
            "image_url": {"type": "string", "description": "the rendered grid (result.jpg)"},
            "error": {"type": "string", "description": "why it failed, for people"},
        },
    },
    "Health": {
        "type": "object", "required": ["redis", "workers", "queue_length", "status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "redis": {"type": "boolean"},
            "redis_error": {"type": "string"},
            "workers": {"type": "integer", "minimum": 0,
                        "description": "workers registered in Redis (any queue)"},
            "queue_length": {"type": "integer", "minimum": 0, "nullable": True},
            "catalogue_pairs": {"type": "integer", "nullable": True},
            "descriptor": {"type": "string", "nullable": True},
            "weights": {"type": "object", "nullable": True,
                        "properties": {"id": {"type": "string"},
                                       "fingerprint": {"type": "string"}}},
            "index_created": {"type": "string", "nullable": True},
            "index_error": {"type": "string"},
        },
    },
    "Check": {
        "type": "object", "required": ["ok", "reason"], "additionalProperties": False,
        "properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"}},
    },
    "Readiness": {
        "type": "object", "required": ["ready", "checks"], "additionalProperties": False,
        "properties": {
            "ready": {"type": "boolean"},
            "checks": {
                "type": "object", "additionalProperties": False,
                "required": ["redis", "worker", "index", "output_dir"],
                "properties": {name: {"$ref": "#/components/schemas/Check"}
                               for name in ("redis", "worker", "index", "output_dir")},
            },
        },
    },
}

SEARCH_FORM = {
    "type": "object",
    "description": "at least one of `front` and `back` (400 `missing_images` otherwise)",
    "anyOf": [{"required": ["front"]}, {"required": ["back"]}],
    "properties": {
        "front": {"type": "string", "format": "binary",
                  "description": "the front drawing, JPEG or PNG (checked by content, not name)"},
        "back": {"type": "string", "format": "binary",
                 "description": "the back drawing, JPEG or PNG (checked by content, not name)"},
        "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20,
              "description": "how many designs to return"},
        "front_weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                         "description": "weight of the front score (the back gets 1 - this); "
                                        "unused for a one-sided query"},
        "sides": {"type": "string", "enum": ["known", "unknown"], "default": "known",
                  "description": "`unknown`: also match the query's front against each design's "
                                 "back and the other way round, keeping the better"},
    },
}

PATHS: dict = {
    "/api/searches": {"post": {
        "operationId": "createSearch", "summary": "Submit a pair (or one side) to search for",
        "requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": SEARCH_FORM,
            "encoding": {"front": {"contentType": "image/png, image/jpeg"},
                         "back": {"contentType": "image/png, image/jpeg"}}}}},
        "responses": {
            "202": {"description": "queued; poll `url`",
                    "headers": {"Location": {"description": "the search's URL",
                                             "schema": {"type": "string"}}},
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/SearchCreated"}}}},
            "400": _error("no image, an empty file, or a bad `k`, `front_weight` or `sides` "
                          "(also a malformed multipart body)"),
            "413": _error("the request is over MAX_UPLOAD_MB (`too_large`) or an image has too "
                          "many pixels (`too_many_pixels`)"),
            "415": _error("an image is not a JPEG or PNG, whatever its name (`unsupported_format`)"),
            "422": _error("an image is corrupt or truncated, too small, of extreme aspect ratio or "
                          "animated"),
            "503": _error("Redis is unreachable (`queue_unavailable`), no worker is running "
                          "(`no_worker`) or too many searches wait (`queue_full`)", retry=True),
        },
    }},
    "/api/searches/{search_id}": {
        "parameters": [{"name": "search_id", "in": "path", "required": True, "schema": SEARCH_ID}],
        "get": {
            "operationId": "getSearch", "summary": "Poll a search: status, stage, then results",
            "parameters": [{"name": "wait", "in": "query", "required": False,
                            "description": "hold the answer up to this many seconds until the "
                                           "search is finished or failed (long poll; 0: answer "
                                           "at once)",
                            "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S,
                                       "default": 0}}],
            "responses": {
                "200": {"description": "the search", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Search"}}}},
                "400": _error(f"`wait` is not a number of seconds from 0 to {MAX_WAIT_S:g}"),
                "404": _error("unknown, expired or malformed id"),
                "503": UNAVAILABLE,
            },
        },
    },
    "/api/searches/{search_id}/result.jpg": {
        "parameters": [{"name": "search_id", "in": "path", "required": True, "schema": SEARCH_ID}],
        "get": {
            "operationId": "getSearchImage", "summary": "The rendered grid of a finished search",
            "responses": {
                "200": {"description": "the grid: the query pair, then each hit",
                        "content": {"image/jpeg": {"schema": {"type": "string",
                                                              "format": "binary"}}}},
                "404": _error("unknown, expired or malformed id, or the image has expired"),
                "409": _error("not finished yet (`not_ready`) or failed (`search_failed`)"),
                "503": UNAVAILABLE,
            },
        },
    },
    "/api/designs": {"post": {
        "operationId": "addDesign", "summary": "Add a design to the catalogue (no re-index)",
        "security": [{"adminToken": []}],
        "requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": {"type": "object", "required": ["name", "front", "back"], "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"},
                "front": {"type": "string", "format": "binary"},
                "back": {"type": "string", "format": "binary"}}}}}},
        "responses": {
            **_edit_responses("201", "added"),
            "400": _error("bad or missing name or image"),
            "409": _error("a design of that name exists (`duplicate_name`)"),
            "413": _error("too large"), "415": _error("not a JPEG or PNG"),
            "422": _error("corrupt image, or the edit failed (`edit_failed`)"),
        },
    }},
    "/api/designs/{name}": {
        "parameters": [{"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "delete": {
            "operationId": "removeDesign", "summary": "Remove a design from the catalogue",
            "security": [{"adminToken": []}],
            "responses": {
                **_edit_responses("200", "removed"),
                "404": _error("no such design"),
                "422": _error("the edit failed (`edit_failed`)"),
            },
        },
    },
    "/healthz": {"get": {
        "operationId": "health", "summary": "What the service sees: Redis, workers, index",
        "responses": {
            "200": {"description": "Redis answers (`status` says whether all is well)",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Health"}}}},
            "503": {"description": "Redis is unreachable", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Health"}}}},
        },
    }},
    "/readyz": {"get": {
        "operationId": "ready",
        "summary": "200 only when Redis answers, a worker of the queue has a heartbeat within "
                   "60 s, the feature manifest is readable and OUTPUT_DIR is writable",
        "responses": {
            code: {"description": description, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Readiness"}}}}
            for code, description in (("200", "ready"), ("503", "not ready: see `checks`"))
        },
    }},
    "/metrics": {"get": {
        "operationId": "metrics", "summary": "Prometheus text exposition format",
        "responses": {"200": {"description": "searches by status, queue length, live workers, "
                                             "per-stage durations",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }},
    "/openapi.json": {"get": {
        "operationId": "openapi", "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.0", "content": {
            "application/json": {"schema": {"type": "object"}}}}},
    }},
}

SPEC: dict = {
    "openapi": "3.0.3",
    "info": {"title": "Paired design search", "version": "0.1.0",
             "description": "Upload the front and back of a garment design; get the catalogue "
                            "designs most like it. Searches run asynchronously: submit, poll, "
                            "then fetch the grid."},
    "paths": PATHS,
    "components": {"schemas": SCHEMAS, "securitySchemes": {
        "adminToken": {"type": "http", "scheme": "bearer",
                       "description": "the server's ADMIN_TOKEN setting"}}},
}


def openapi_document() -> dict:
    """A fresh copy of the document (callers may not change the module's)."""
    return deepcopy(SPEC)
