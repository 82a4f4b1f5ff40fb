"""Response headers every answer gets: no sniffing, no framing, no referrer beyond this site,
a Content-Security-Policy on pages (inline style and script allowed by a per-request nonce
only), and no caching of anything but the catalogue's drawings (a search, a check, a list show a
team's unreleased designs)."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request

from web.errors import RequestRefused

PRIVATE = "private, no-store"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
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

    @app.before_request
    def refuse_other_sites():
        """A page of another site may make a visitor's browser POST here (a form, a no-cors
        fetch: no preflight) to a service reachable on loopback or a LAN only; browsers say
        so (Sec-Fetch-Site), scripts and curl send no such header."""
        if request.method not in SAFE_METHODS and \
                request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise RequestRefused(403, "cross_site", "a page of another site may not send "
                                 "requests to this service; use its own pages or its API")

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
