"""Duplicates inside the catalogue: GET /api/duplicates (and .csv) and the /duplicates review page.

Both read the pairs the current generation lists (worker.core.duplicates, computed when the
index was built or edited): the web loads no bank and scores nothing.
"""

from __future__ import annotations

import math
import threading

from flask import Blueprint, current_app, jsonify, render_template, request

from web.apidoc import Responses, api
from web.catalogue import image_urls
from web.errors import RequestRefused
from web.headers import csv_attachment
from web.queryargs import int_arg
from web.schemas import Duplicates, DuplicatesQuery, Error
from worker.core.bank import BankError
from worker.core.duplicates import (
    DEFAULT_MIN_VERDICT,
    VERDICTS,
    DuplicatePairs,
    duplicate_groups,
    read_duplicates_cached,
)
from worker.core.results_csv import DUPLICATES_COLUMNS, duplicates_csv
from worker.pipeline.verdicts import (
    CALIBRATED_DUPLICATES,
    duplicate_thresholds_in,
    plain_thresholds_in,
)

bp = Blueprint("duplicates", __name__)
PER_PAGE, MAX_PER_PAGE = 20, 200  # groups on one page
SHOWN_DESIGNS, SHOWN_PAIRS = 48, 100  # of one group on the page (the JSON and CSV list all)
_cache: dict = {}  # {min_verdict: groups} of one list (`pairs`), dropped for the next one
_cache_lock = threading.Lock()


def _min_verdict() -> str:
    if len(request.args.getlist("min_verdict")) > 1:  # which one was meant?
        raise RequestRefused(400, "invalid_min_verdict", "min_verdict was given more than once")
    raw = request.args.get("min_verdict", DEFAULT_MIN_VERDICT)
    if raw not in VERDICTS:
        raise RequestRefused(400, "invalid_min_verdict", f"min_verdict must be one of "
                             f"{', '.join(VERDICTS)}; got {raw!r}")
    return raw


def _groups(min_verdict: str) -> tuple[dict, list[dict]]:
    """The current generation's manifest and its groups at `min_verdict`; 503 `no_index`
    (as catalogue edits answer) without an index that lists its duplicates."""
    try:
        manifest, pairs = read_duplicates_cached(current_app.config["SETTINGS"].features_dir)
    except BankError as exc:
        raise RequestRefused(503, "no_index", str(exc), retry_after=60) from None
    return manifest, _cached_groups(pairs, manifest["names"], min_verdict)


def _cached_groups(pairs: DuplicatePairs, names: list[str], min_verdict: str) -> list[dict]:
    """The groups of the generation's list as read (one object while the generation stands),
    made once a verdict: each page of a long list would otherwise group every pair again."""
    with _cache_lock:
        if _cache.get("pairs") is not pairs:  # a new generation (or the first read)
            _cache.clear()
            _cache["pairs"] = pairs
        if min_verdict not in _cache:
            _cache[min_verdict] = duplicate_groups(pairs, names, min_verdict)
        return _cache[min_verdict]


@bp.get("/api/duplicates")
@api.validate(query=DuplicatesQuery, tags=["catalogue"], operation_id="listDuplicates",
              skip_validation=True, resp=Responses(
                  HTTP_200=(Duplicates, "the groups (none: an empty list)"),
                  HTTP_400=(Error, "`min_verdict` is not copy, near-duplicate or similar, "
                                   "or is given twice (`invalid_min_verdict`)"),
                  HTTP_503=(Error, "no index, or one built before duplicates were listed "
                                   "(`no_index`)")))
def list_duplicates():
    """Groups of catalogue designs that are duplicates of each other

    Connected groups: two designs are joined when their pair is judged at least
    `min_verdict`, so a group may hold designs joined only through another one."""
    _, groups = _groups(_min_verdict())
    return jsonify(groups=groups)


@bp.get("/api/duplicates.csv")
@api.validate(query=DuplicatesQuery, tags=["catalogue"], operation_id="listDuplicatesCsv",
              skip_validation=True, resp=Responses(
                  HTTP_200=(None, "CSV, a row per pair: " + ",".join(DUPLICATES_COLUMNS)
                            + "; `group` numbers the groups from 1, as the page does; "
                            "`sketches` names which of the pair (a, b, or a b) its group "
                            "judges without its lead, drawn as line sketches"),
                  HTTP_400=(Error, "`min_verdict` is not copy, near-duplicate or similar, "
                                   "or is given twice (`invalid_min_verdict`)"),
                  HTTP_503=(Error, "no index, or one built before duplicates were listed "
                                   "(`no_index`)")))
def list_duplicates_csv():
    """The duplicate pairs as CSV, for a spreadsheet"""
    min_verdict = _min_verdict()
    _, groups = _groups(min_verdict)
    return csv_attachment(duplicates_csv(groups), f"duplicates-{min_verdict}.csv")


@bp.get("/duplicates")
def duplicates_page():
    """Each group with the drawings of its designs and the verdicts of its pairs, a page of
    groups at a time, a group's first designs and pairs (the CSV lists all)."""
    min_verdict = _min_verdict()
    page, per_page = int_arg("page", 1, 10**6), int_arg("per_page", PER_PAGE, MAX_PER_PAGE)
    manifest, groups = _groups(min_verdict)
    row = {name: i for i, name in enumerate(manifest["names"])}

    def drawings(name: str) -> dict:
        i = row[name]
        # the page shows the thumbnails, linked to the drawings
        return {"name": name, **image_urls(manifest["fronts"][i], manifest["backs"][i])}

    first = (page - 1) * per_page
    on_page = groups[first:first + per_page]
    shown = [{"number": first + i + 1, "n_designs": len(g["designs"]), "n_pairs": len(g["pairs"]),
              "designs": [drawings(n) | {"sketch": n in g["sketches"]}
                          for n in g["designs"][:SHOWN_DESIGNS]],
              "pairs": g["pairs"][:SHOWN_PAIRS]}
             for i, g in enumerate(on_page)]
    judged = duplicate_thresholds_in(manifest)
    scale = "none" if judged is None else "search" if judged == plain_thresholds_in(manifest) \
        else "own"
    return render_template("duplicates.html", groups=shown, n_groups=len(groups), page=page,
                           per_page=per_page, default_per_page=PER_PAGE,
                           pages=max(1, math.ceil(len(groups) / per_page)),
                           min_verdict=min_verdict,
                           verdicts=VERDICTS, n_designs=len(manifest["names"]), scale=scale,
                           relist=manifest.get("descriptor") in CALIBRATED_DUPLICATES,
                           lead_weight=(judged or {}).get("margin_weight", 1.0),
                           sketches=any(g["sketches"] for g in on_page))
