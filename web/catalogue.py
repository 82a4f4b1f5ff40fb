"""What the web knows of the catalogue being searched: the current generation's pairs.csv
(its columns and values, to check filters and offer them) and manifest (size, when indexed,
descriptor), read again only when the generation changes; and which file a catalogue image
path names, if any."""

from __future__ import annotations

import os

from flask import current_app, g, url_for
from werkzeug.security import safe_join

from web.errors import RequestRefused
from worker.core.bank import BankError
from worker.core.catalogue import (
    Catalogue,
    CatalogueError,
    listed_catalogue,
    served_path,
    thumbnail_file,
)
from worker.core.filters import FilterError, Filters, NothingPasses, check_some_pass
from worker.core.readcache import StampedCache, current_stamp, read_manifest_cached

_catalogues = StampedCache(listed_catalogue)
# what /database/ serves, known by content: the index reads a drawing whatever its name
# (a JPEG saved as x.jfif or x.jpe is searched, and was not shown)
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def current_catalogue() -> Catalogue | None:
    """The current generation's catalogue; None when there is no index or it cannot be read."""
    settings = current_app.config["SETTINGS"]
    try:
        if current_stamp(settings.features_dir) is None:
            return None
        return _catalogues.get(settings.features_dir, settings.database_dir)
    except (CatalogueError, BankError) as exc:
        current_app.logger.warning("the catalogue cannot be read: %s", exc)
        return None


def check_request_filters(filters: Filters) -> None:
    """400 `unknown_filter` naming a column or value the catalogue lacks, 400
    `no_design_passes` for filters no design passes together. Without a readable catalogue
    the worker checks them (and fails the search with the same message)."""
    catalogue = current_catalogue() if filters else None
    if catalogue is None:
        return
    try:
        check_some_pass(filters, catalogue)
    except NothingPasses as exc:
        raise RequestRefused(400, "no_design_passes", str(exc)) from None
    except FilterError as exc:
        raise RequestRefused(400, "unknown_filter", str(exc)) from None


def index_summary() -> dict | None:
    """What is being searched: designs, when indexed (and last edited), descriptor; None
    without an index."""
    try:
        manifest = read_manifest_cached(current_app.config["SETTINGS"].features_dir)
    except BankError:
        return None
    return {"n_pairs": manifest.get("n_pairs"), "created": manifest.get("created"),
            "updated": manifest.get("updated"), "descriptor": manifest.get("descriptor")}


class CatalogueUrls:
    """One request's catalogue URLs: each path resolved, each file's version read and each
    route's prefix built once (a finished check's hits name 20,000 drawings, and url_for and
    flask.g cost microseconds a call)."""

    SLOT = "pairsearch-path-slot"  # a path no character of which the path converter quotes

    def __init__(self) -> None:
        settings = current_app.config["SETTINGS"]
        self.database_dir, self.features_dir = settings.database_dir, settings.features_dir
        self.root = os.path.realpath(settings.database_dir)
        self.converter = current_app.url_map.converters["path"](current_app.url_map)
        self.paths: dict[str, str] = {}
        self.versions: dict[str | os.PathLike, str | None] = {}
        self.prefixes: dict[str, str] = {}

    def served(self, relative: str) -> str:
        if relative not in self.paths:
            self.paths[relative] = served_path(self.root, relative)
        return self.paths[relative]

    def version(self, path: str | os.PathLike) -> str | None:
        """What a URL carries so a browser's copy (kept an hour) is not shown once the file
        is written again: its inode's change time (a file renamed into place or restored
        with an old mtime changes it too); None where there is no file."""
        if path not in self.versions:
            try:
                self.versions[path] = f"{os.stat(path).st_ctime_ns:x}"
            except OSError:
                self.versions[path] = None
        return self.versions[path]

    def url(self, endpoint: str, path: str, version: str | None) -> str:
        """`url_for(endpoint, path=path, v=version)` of a `<path:path>` route."""
        if endpoint not in self.prefixes:
            self.prefixes[endpoint] = url_for(endpoint, path=self.SLOT).rsplit(self.SLOT, 1)[0]
        url = self.prefixes[endpoint] + self.converter.to_url(path)
        return url if version is None else f"{url}?v={version}"

    def drawing(self, relative: str) -> str:
        path = self.served(relative)
        return self.url("pages.catalogue_image", path,
                        self.version(os.path.join(self.database_dir, path)))

    def thumbnail(self, relative: str) -> str:
        path = self.served(relative)
        version = (self.version(thumbnail_file(self.features_dir, relative))
                   or self.version(os.path.join(self.database_dir, path)))
        return self.url("browse.thumbnail", path, version)


def catalogue_urls() -> CatalogueUrls:
    """This request's (kept in flask.g)."""
    urls = g.get("catalogue_urls")
    if urls is None:
        urls = g.catalogue_urls = CatalogueUrls()
    return urls


def served(relative: str) -> str:
    """The path under /database/ of catalogue image `relative` as pairs.csv writes it."""
    return catalogue_urls().served(relative)


def drawing_url(relative: str) -> str:
    """`/database/<path>?v=<ctime>` of catalogue image `relative`."""
    return catalogue_urls().drawing(relative)


def thumb_url(relative: str) -> str:
    """`/catalogue/thumbs/<path>?v=<ctime>` of catalogue image `relative`: the thumbnail's
    (the index writes it anew for a redrawn drawing), else the drawing's."""
    return catalogue_urls().thumbnail(relative)


def image_urls(front: str, back: str) -> dict[str, str]:
    """A design's two drawings and their thumbnails: `front_url`, `front_thumb_url`, ..."""
    return {"front_url": drawing_url(front), "back_url": drawing_url(back),
            "front_thumb_url": thumb_url(front), "back_thumb_url": thumb_url(back)}


def catalogue_file(path: str) -> tuple[str, str] | None:
    """The real path and the type of a regular PNG or JPEG file inside DATABASE_DIR that
    `path` names, after following every link; None for anything else (a link out, a folder,
    a device, a FIFO, a file of another kind)."""
    root = os.path.realpath(current_app.config["SETTINGS"].database_dir)
    joined = safe_join(root, path)
    if joined is None or "\x00" in path:
        return None  # a NUL: no file has one, and realpath would raise
    real = os.path.realpath(joined)
    if os.path.commonpath([root, real]) != root or not os.path.isfile(real):
        return None
    try:
        with open(real, "rb") as image:
            head = image.read(8)
    except OSError:
        return None
    return next(((real, kind) for signature, kind in SIGNATURES.items()
                 if head.startswith(signature)), None)
