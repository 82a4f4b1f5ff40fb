"""HTML pages: the upload form, the search page (polls, then shows the grid), catalogue images."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from web.searches import describe, fetch_search
from web.submissions import SubmissionError, submit_search

bp = Blueprint("pages", __name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@bp.get("/")
def index():
    return render_template("index.html", error=None, form={})


@bp.post("/")
def submit():
    try:
        search_id = submit_search(request.files, request.form)
    except SubmissionError as exc:
        response = current_app.make_response(
            render_template("index.html", error=exc.message, form=request.form))
        response.status_code = exc.status
        if exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return redirect(url_for("pages.search_page", search_id=search_id), code=303)


@bp.get("/searches/<search_id>")
def search_page(search_id: str):
    job = fetch_search(search_id)
    if job is None:
        abort(404, description="no such search (unknown or expired id)")
    return render_template("search.html", search=describe(job))


@bp.get("/database/<path:path>")
def catalogue_image(path: str):
    if not path.lower().endswith(IMAGE_SUFFIXES):
        abort(404)
    return send_from_directory(current_app.config["SETTINGS"].database_dir, path, max_age=3600)
