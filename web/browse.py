"""Browsing the catalogue being searched: `/catalogue` (paged thumbnails, filterable by the
catalogue's columns, each design with a button that searches with it), the same as JSON at
`/api/catalogue`, and the thumbnails the index made (`/catalogue/thumbs/<image path>`)."""

from __future__ import annotations

import math

import numpy as np
from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from pydantic import Field

from web.apidoc import Responses, api
from web.catalogue import catalogue_file, current_catalogue, image_urls
from web.errors import RequestRefused
from web.queryargs import int_arg
from web.schemas import FILTER, Closed, Error, FilterField, Model
from worker.core.catalogue import Catalogue, thumbnail_file
from worker.core.filters import (
    MAX_FILTER_FIELDS,
    FilterError,
    Filters,
    allowed_rows,
    as_fields,
    check_filters,
    facets,
    parse_filter_fields,
)

bp = Blueprint("browse", __name__)
PER_PAGE = 48
MAX_PER_PAGE = 200


class CatalogueQuery(Model):
    page: int = Field(1, ge=1, le=10**6, description="1 is the first (400 `invalid_page`)")
    per_page: int = Field(PER_PAGE, ge=1, le=MAX_PER_PAGE,
                          description="designs a page (400 `invalid_per_page`)")
    filter: list[FilterField] = Field([], max_length=MAX_FILTER_FIELDS, description=FILTER)


class CatalogueDesign(Closed):
    name: str
    front: str = Field(description="catalogue path of the front")
    back: str = Field(description="catalogue path of the back")
    columns: dict[str, str] = Field(description="the further pairs.csv columns")
    front_url: str = Field(description="`/database/<front>`")
    back_url: str = Field(description="`/database/<back>`")
    front_thumb_url: str = Field(description="the index's 150 px thumbnail of the front")
    back_thumb_url: str = Field(description="the index's 150 px thumbnail of the back")


class CatalogueListing(Closed):
    """One page of the designs that pass the filters, in catalogue order."""

    total: int = Field(ge=0, description="designs that pass the filters")
    catalogue_pairs: int = Field(ge=0, description="designs in the catalogue")
    page: int = Field(ge=1)
    per_page: int = Field(ge=1)
    pages: int = Field(ge=1, description="pages of `total` (a page past it lists none)")
    filters: dict[str, list[str]] = Field(description="the filters applied: column -> values")
    columns: dict[str, list[str]] = Field(description="each further column and its values")
    designs: list[CatalogueDesign]


def _filters(catalogue: Catalogue, left_out: list[str] | None = None
             ) -> tuple[Filters, np.ndarray]:
    """The query's filters and the rows they let through (400 naming a bad one); given
    `left_out`, a column or value the catalogue no longer has is left out and named there."""
    try:
        filters = parse_filter_fields(request.args.getlist("filter"))
    except FilterError as exc:
        raise RequestRefused(400, "invalid_filter", str(exc)) from None
    if left_out is not None:
        filters = _known(filters, catalogue, left_out)
    try:
        allowed = allowed_rows(filters, catalogue)
    except FilterError as exc:
        raise RequestRefused(400, "unknown_filter", str(exc)) from None
    return filters, np.arange(len(catalogue)) if allowed is None else np.flatnonzero(allowed)


def _known(filters: Filters, catalogue: Catalogue, left_out: list[str]) -> Filters:
    """The columns and values of `filters` the catalogue has; the others appended to
    `left_out` ("season SS24"): a bookmarked page whose last SS24 design was removed."""
    kept: Filters = {}
    for column, values in filters.items():
        for value in values:
            try:
                check_filters({column: [value]}, catalogue)
                kept.setdefault(column, []).append(value)
            except FilterError:
                left_out.append(f"{column} {value}")
    return kept


def design_view(catalogue: Catalogue, row: int) -> dict:
    """One design as the listing shows it: names, columns, image and thumbnail URLs."""
    front, back = catalogue.fronts[row], catalogue.backs[row]
    return {"name": catalogue.names[row], "front": front, "back": back,
            "columns": catalogue.columns_of(row), **image_urls(front, back)}


def listing(left_out: list[str] | None = None) -> dict:
    """The page of designs the query asks for (`page`, `per_page`, `filter`), in catalogue
    order; past the last page, none. `left_out`: as `_filters`."""
    catalogue = current_catalogue()
    if catalogue is None:
        raise RequestRefused(503, "no_index", "the catalogue has not been indexed yet (or its "
                             "list cannot be read); run `make index`", retry_after=60)
    page, per_page = int_arg("page", 1, 10**6), int_arg("per_page", PER_PAGE, MAX_PER_PAGE)
    filters, rows = _filters(catalogue, left_out)
    shown = rows[(page - 1) * per_page:page * per_page]
    return {"total": len(rows), "catalogue_pairs": len(catalogue), "page": page,
            "per_page": per_page, "pages": max(1, math.ceil(len(rows) / per_page)),
            "filters": filters, "columns": facets(catalogue),
            "designs": [design_view(catalogue, int(i)) for i in shown]}


@bp.get("/api/catalogue")
@api.validate(query=CatalogueQuery, tags=["catalogue"], operation_id="listCatalogue",
              skip_validation=True, resp=Responses(
                  HTTP_200=(CatalogueListing, "one page of the designs that pass the filters"),
                  HTTP_400=(Error, "a bad `page` or `per_page` (`invalid_page`, "
                                   "`invalid_per_page`), a malformed filter (`invalid_filter`) or "
                                   "one naming a column or value the catalogue lacks "
                                   "(`unknown_filter`)"),
                  HTTP_503=(Error, "no index yet (`no_index`)")))
def list_catalogue():
    """Browse the catalogue being searched, a page at a time, filtered by its columns"""
    return jsonify(listing())


@bp.get("/catalogue")
def catalogue_page():
    left_out: list[str] = []  # a page is shown without them; the API refuses them (400)
    body = listing(left_out)

    def page_url(page: int) -> str:
        return url_for("browse.catalogue_page", page=page, per_page=body["per_page"],
                       filter=as_fields(body["filters"]))

    return render_template("catalogue.html", listing=body, page_url=page_url, left_out=left_out,
                           facets=body["columns"], chosen=body["filters"],
                           filter_fields=as_fields(body["filters"]))


@bp.get("/catalogue/thumbs/<path:path>")
def thumbnail(path: str):
    """The index's thumbnail of catalogue image `path`, else the image itself; 404 once the
    drawing is gone from the catalogue's folder (its design removed), thumbnail or not."""
    if catalogue_file(path) is None:
        abort(404)
    catalogue = current_catalogue()  # a thumbnail is named by the path as pairs.csv writes it
    written = catalogue.written_as.get(path, path) if catalogue is not None else path
    thumb = thumbnail_file(current_app.config["SETTINGS"].features_dir, written)
    if not thumb.is_file():
        return redirect(url_for("pages.catalogue_image", path=path))
    return send_file(thumb, mimetype="image/jpeg", max_age=3600)
