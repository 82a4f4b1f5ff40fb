"""The web page in a real browser: Debian's Chromium driven by Playwright, against the app
served over HTTP, with a real worker process. Screenshots land in test-artifacts/."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.images import N_PAIRS, design_pair
from worker.core.settings import REPO_ROOT
from worker.dev.processes import stop_process
from worker.dev.services import start_worker, wait_for_workers

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def site(indexed_settings, redis):
    """The app on a real HTTP port, and one real worker process."""
    import dataclasses

    from web import create_app
    from worker.dev.processes import free_port

    settings = dataclasses.replace(indexed_settings, require_worker=True)
    server = make_server("127.0.0.1", free_port(), create_app({"SETTINGS": settings}),
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker = start_worker(settings)
    wait_for_workers(settings)
    yield f"http://127.0.0.1:{server.server_port}"
    stop_process(worker)
    server.shutdown()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def drawings(tmp_path) -> tuple[Path, Path]:
    front, back = design_pair(13, N_PAIRS)
    (tmp_path / "front.png").write_bytes(front)
    (tmp_path / "back.png").write_bytes(back)
    return tmp_path / "front.png", tmp_path / "back.png"


def test_upload_a_pair_and_see_the_results(site, browser, drawings):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site)
    page.set_input_files("#front", str(drawings[0]))
    page.set_input_files("#back", str(drawings[1]))
    for preview in ("#front-preview", "#back-preview"):  # shown by the change handler
        page.wait_for_selector(preview, state="visible", timeout=10_000)
    page.click("button[type=submit]")
    page.wait_for_url("**/searches/*")
    page.wait_for_selector("img.grid", timeout=90_000)
    rows = page.locator("#results tbody tr")
    assert rows.count() == 20
    assert "dress-0013" in rows.first.inner_text()
    assert page.evaluate("document.querySelector('img.grid').naturalWidth") > 1000
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "result-page.png"), full_page=True)

    # "search with this design" from the second hit starts a new search for that design
    second = rows.nth(1).locator("td").nth(3).inner_text().strip()
    rows.nth(1).locator("button").click()
    page.wait_for_selector("img.grid", timeout=90_000)
    assert second in page.locator("#results tbody tr").first.inner_text()


def test_the_form_works_without_javascript(site, browser, drawings):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site)
    page.set_input_files("#front", str(drawings[0]))
    page.set_input_files("#back", str(drawings[1]))
    page.click("button[type=submit]")
    page.wait_for_selector("img.grid", timeout=90_000)  # the page refreshes itself
    assert page.locator("#results tbody tr").count() == 20


def test_errors_are_shown_in_plain_words(site, browser, tmp_path):
    (tmp_path / "notes.png").write_text("not really a picture")
    page = browser.new_page()
    page.goto(site)
    page.set_input_files("#front", str(tmp_path / "notes.png"))
    page.click("button[type=submit]")
    assert "not a JPEG or PNG image" in page.locator("[role=alert]").inner_text()


@pytest.fixture
def catalogue_site(indexed_settings, redis):
    """The app on a real HTTP port over the indexed catalogue, no worker (pages that only
    read the index)."""
    from web import create_app
    from worker.dev.processes import free_port

    server = make_server("127.0.0.1", free_port(), create_app({"SETTINGS": indexed_settings}),
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_review_the_duplicate_groups_with_their_drawings(catalogue_site, browser):
    """The session catalogue files some designs with another's front: they are duplicates."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(catalogue_site)
    page.click("header nav a:text('Duplicates')")
    page.wait_for_url("**/duplicates")
    page.select_option("#min_verdict", "similar")
    page.click("button:text('Show')")
    page.wait_for_url("**/duplicates?min_verdict=similar")
    group = page.locator(".group").first
    group.wait_for(timeout=10_000)
    names = group.locator("figcaption").all_inner_texts()
    assert len(names) >= 2
    images = group.locator(".design img")
    assert images.count() == 2 * len(names)
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=images.nth(i).element_handle(), timeout=10_000)
    assert group.locator(".pairs tbody tr").count() >= 1
    assert group.locator(".verdict").first.inner_text() in ("copy", "near-duplicate", "similar")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "duplicates-page.png"), full_page=True)
