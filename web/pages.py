"""HTML pages: the upload form, the search page (polls, then shows the grid), catalogue images."""

from __future__ import annotations

import io
import os
from datetime import datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from redis.exceptions import RedisError
from werkzeug.datastructures import FileStorage, MultiDict

from web.catalogue import catalogue_file, current_catalogue, index_summary, served
from web.check_uploads import submit_check
from web.checks import cancel_unstarted, check_off_loop, describe_check, state_or_404
from web.errors import RequestRefused
from web.searches import describe, fetch_search, mark_searched_with
from web.submissions import require_multipart, submit_search
from worker.core.bank import BankError
from worker.core.checks import CANCELLED
from worker.core.filters import FilterError, facets, parse_filter_fields
from worker.core.readcache import read_manifest_cached

bp = Blueprint("pages", __name__)
VERDICT_ORDER = {"copy": 0, "near-duplicate": 1, "similar": 2}


@bp.app_template_filter("when")
def when(iso: str | None) -> str:
    """An ISO time as a person reads it ("3 Dec 2026, 05:12 UTC"); what does not parse, as is."""
    try:
        moment = datetime.fromisoformat(iso or "")
    except ValueError:
        return iso or ""
    offset = moment.utcoffset()
    zone = "" if offset is None else " UTC" if not offset else f" {moment:%z}"
    return f"{moment.day} {moment:%b %Y, %H:%M}{zone}"


def filter_choices(fields: list[str]) -> dict:
    """What a page's filter selects need: each column's values, and those chosen now."""
    catalogue = current_catalogue()
    try:
        chosen = parse_filter_fields(fields)
    except FilterError:
        chosen = {}
    return {"facets": {} if catalogue is None else facets(catalogue), "chosen": chosen}


def index_page(error: str | None, form: MultiDict, which: str = "search"):
    """The front page; a refused form (`which`: "search" or "check") shown again with its
    error and values, the other form as new."""
    forms = {name: form if name == which else MultiDict() for name in ("search", "check")}
    choices = {name: filter_choices(values.getlist("filter")) for name, values in forms.items()}
    return render_template("index.html", error=error, which=which, forms=forms,
                           summary=index_summary(), facets=choices["search"]["facets"],
                           chosen={name: c["chosen"] for name, c in choices.items()})


def refused_form(exc: RequestRefused, which: str = "search"):
    """The front page again, with the refusal said and the form's values kept."""
    response = current_app.make_response(index_page(exc.message, request.form, which))
    response.status_code = exc.status
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.get("/")
def index():
    return index_page(None, MultiDict())


@bp.post("/")
def submit():
    try:
        require_multipart()
        search_id = submit_search(request.files, request.form).id
    except RequestRefused as exc:
        return refused_form(exc)
    return redirect(url_for("pages.search_page", search_id=search_id), code=303)


@bp.post("/checks")
def submit_check_form():
    """The form's collection (a ZIP): on to its check's page, or the form with the refusal."""
    try:
        check_id = submit_check(request.files, request.form)
    except RequestRefused as exc:
        return refused_form(exc, "check")
    return redirect(url_for("pages.check_page", check_id=check_id), code=303)


@bp.get("/checks/<check_id>")
def check_page(check_id: str):
    """A progress bar while the check runs; then each design, the most serious verdict first."""
    # a running check's page shows its progress alone: each design's hits read only once done,
    # and off the loop (500 designs' hits: most of a second)
    state = state_or_404(check_id, results=False)
    if state.status.value != "finished":
        return _check_page(state, finished=False)
    return check_off_loop(check_id, lambda finished: _check_page(finished, finished=True))


def _check_page(state, finished: bool) -> str:
    check = describe_check(state, designs=finished)
    designs = check.get("designs", [])
    for design in designs:
        design["unjudged"] = unjudged(design)
        design["side_alerts"] = side_alerts(design)
    return render_template(
        "check.html", check=check, designs=sorted(designs, key=severity),
        flagged=sum(most_serious(d) < VERDICT_ORDER["similar"] for d in designs),
        failed=sum(d["status"] == "failed" for d in designs),
        sketches=sum(d["unjudged"] for d in designs),
        not_checked=sum(d["error"] == CANCELLED for d in designs))


@bp.post("/checks/<check_id>/cancel")
def cancel_check_form(check_id: str):
    """The page's cancel button: the designs not started are not checked; back to the page."""
    cancel_unstarted(check_id)
    return redirect(url_for("pages.check_page", check_id=check_id), code=303)


def unjudged(design: dict) -> bool:
    """Whether a design's hits could get no verdict: every side that counts is a line sketch
    (its hits then have no similarity either; a sketched side beside a weighted coloured one
    is judged)."""
    return bool(design["outline_only"] and design["results"]
                and design["results"][0]["similarity"] is None)


def side_alerts(body: dict) -> list[dict]:
    """A search's or a checked design's `side_copies` that its pair's hits do not already
    judge as seriously: a design made of two catalogue designs' sides (each copied side's
    design then scores about half as a pair, and gets no verdict there)."""
    judged = {hit["name"]: VERDICT_ORDER.get(hit["verdict"], 3) for hit in body["results"]}
    return [side for side in body.get("side_copies", [])
            if judged.get(side["name"], 3) > VERDICT_ORDER[side["verdict"]]]


def most_serious(design: dict) -> int:
    """The most serious verdict a finished design has (VERDICT_ORDER: its first hit's, or a
    side that alone copies a design); 3: none."""
    top = design["results"][0] if design["results"] else {}
    return min([VERDICT_ORDER.get(top.get("verdict"), 3),
                *(VERDICT_ORDER[side["verdict"]] for side in design.get("side_copies", []))])


def severity(design: dict) -> tuple:
    """Sort key of a design on the report: copies first (by its first hit, or a side that
    alone copies a design), then near-duplicates, similar, designs of line sketches alone
    (they cannot get a verdict: a person has to look), no verdict, failed; within each, the
    closest first."""
    top = design["results"][0] if design["results"] else {}
    verdict = most_serious(design)
    rank = (5 if design["status"] != "finished" else
            verdict if verdict < 3 else 4 - unjudged(design))
    closest = max([top.get("similarity") or 0,
                   *(side["similarity"] for side in design.get("side_copies", []))])
    return rank, -closest, design["name"]


@bp.post("/designs/<path:name>/search")  # a hand-written pairs.csv may name "SS26/jkt-01"
def search_like(name: str):
    """"Search with this design": the catalogue design's own drawings become the query,
    among the designs the catalogue page was showing (its `filter` fields), with the `k`,
    `front_weight` and `sides` of the result page it came from; the search then names the
    design searched with (`searched_with`)."""
    settings = current_app.config["SETTINGS"]
    try:
        manifest = read_manifest_cached(settings.features_dir)
        row = manifest["names"].index(name)
    except (BankError, KeyError, ValueError):
        abort(404, description=f"no design named {name!r} in the catalogue")
    drawings = {}
    for side, rel in (("front", manifest["fronts"][row]), ("back", manifest["backs"][row])):
        found = catalogue_file(served(rel))  # pairs.csv may write it `./x` or in full
        if found is None:
            abort(404, description=f"the {side} drawing of {name!r} is missing")
        with open(found[0], "rb") as f:
            drawings[side] = (f.read(), os.path.basename(found[0]))
    options = MultiDict([(field, value) for field in ("filter", "k", "front_weight", "sides")
                         for value in request.form.getlist(field)])  # the search's, kept
    try:
        search_id = _search_with(drawings, options)
    except RequestRefused as exc:  # a blank placeholder page: searched by its other side
        if exc.error != "blank" or exc.side not in drawings or len(drawings) == 1:
            raise
        del drawings[exc.side]
        search_id = _search_with(drawings, options)
    try:
        mark_searched_with(search_id, name, settings.result_ttl)
    except RedisError:  # the search is queued all the same: only its heading is lost
        current_app.logger.warning("could not record that search %s is %s's", search_id, name)
    return redirect(url_for("pages.search_page", search_id=search_id), code=303)


def _search_with(drawings: dict[str, tuple[bytes, str]], options: MultiDict) -> str:
    return submit_search(MultiDict({side: FileStorage(io.BytesIO(data), filename=name)
                                    for side, (data, name) in drawings.items()}), options).id


@bp.post("/designs/search")
def search_like_named():
    """The same for the design the form's `name` field names: the pages' buttons post here,
    since a name such as `..` in a URL path is rewritten by the browser before it is sent."""
    return search_like(request.form.get("name", ""))


@bp.get("/searches/<search_id>")
def search_page(search_id: str):
    job = fetch_search(search_id)
    if job is None:
        abort(404, description="no such search (unknown or expired id)")
    search = describe(job)
    return render_template("search.html", search=search,
                           side_alerts=side_alerts(search) if "results" in search else [])


@bp.get("/database/<path:path>")
def catalogue_image(path: str):
    found = catalogue_file(path)
    if found is None:
        abort(404)
    real, kind = found
    return send_file(real, mimetype=kind, max_age=3600)
