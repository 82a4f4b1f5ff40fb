"""Response headers every answer gets: no sniffing, no framing, no referrer beyond this site,
a Content-Security-Policy on pages (inline style and script allowed by a per-request nonce
only), and no caching of a search (its results are a team's unreleased designs)."""

from __future__ import annotations

import secrets

from flask import Flask, g, request

PRIVATE = "private, no-store"
PRIVATE_ENDPOINTS = frozenset({"api.create_search", "api.get_search", "api.get_result_image",
                               "pages.submit", "pages.search_page", "pages.search_like",
                               "matches.get_match_image", "matches.match_page",
                               "checks.create_check", "checks.get_check", "checks.get_report",
                               "pages.submit_check_form", "pages.check_page"})
CATALOGUE_IMAGES = "pages.catalogue_image"


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
        if request.endpoint in PRIVATE_ENDPOINTS:
            headers["Cache-Control"] = PRIVATE
            headers.pop("Expires", None)
        elif request.endpoint == CATALOGUE_IMAGES and response.status_code == 200:
            headers["Cache-Control"] = "private, max-age=3600"
        return response
