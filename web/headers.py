"""Response headers every answer gets: no sniffing, no framing, no referrer beyond this site,
a Content-Security-Policy on pages (inline style and script allowed by a per-request nonce
only), and no caching of anything but the catalogue's drawings (a search, a check, a list show a
team's unreleased designs)."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request

PRIVATE = "private, no-store"
# what a browser may keep an hour: the catalogue's own drawings; every other answer (a search,
# a check, a design image, a list) may show a team's unreleased designs and is never kept
CACHED_AN_HOUR = frozenset({"pages.catalogue_image", "browse.thumbnail", "static"})


def csv_attachment(text: str, filename: str) -> Response:
    """A CSV download, UTF-8 with a byte-order mark: Excel reads a file without one in the
    machine's code page (`Été` as `Ã‰tÃ©`); pandas and `utf-8-sig` readers drop the mark."""
    return Response("\ufeff" + text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def csp_nonce() -> str:
    """This request's nonce for inline <style> and <script> (templates: `csp_nonce()`)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def content_security_policy(nonce: str) -> str:
    return "; ".join([
        "default-src 'none'", f"script-src 'nonce-{nonce}'", f"style-src 'nonce-{nonce}'",
        "img-src 'self' blob:", "connect-src 'self'", "form-action 'self'",
        "base-uri 'none'", "frame-ancestors 'none'"])


def register(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            headers["Content-Security-Policy"] = content_security_policy(csp_nonce())
        if request.endpoint in CACHED_AN_HOUR and response.status_code in (200, 304):
            headers["Cache-Control"] = "private, max-age=3600"
        else:  # an allow-list of private endpoints missed one: no list to miss
            headers["Cache-Control"] = PRIVATE
            headers.pop("Expires", None)
        return response
