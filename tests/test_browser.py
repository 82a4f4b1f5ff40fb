"""The web page in a real browser: Debian's Chromium driven by Playwright, against the app
served over HTTP, with a real worker process. Screenshots land in test-artifacts/ under CI
(CI=true), else in each test's tmp_path."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.background_indexes import SUITE_PRECISION
from tests.images import N_PAIRS, design_pair
from worker.core.settings import REPO_ROOT
from worker.dev.processes import stop_process
from worker.dev.services import start_worker, wait_for_workers

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"  # kept for CI to collect; a local run leaves the tree alone
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, redis_url, catalogue_dir, features_dir):
    """The app on a real HTTP port and one real worker process, shared by the module's tests
    as by a team's browsers (each test opens its own browser context): the worker starts
    once, not per test. A Redis database of its own (the session's server is new), which the
tests' flushes of database 0 leave alone."""
    from web import create_app
    from worker.core.settings import Settings
    from worker.dev.processes import free_port

    root = tmp_path_factory.mktemp("site")
    shutil.copytree(features_dir, root / "features")
    settings = Settings(redis_url=redis_url.rsplit("/", 1)[0] + "/1", database_dir=catalogue_dir,
                        features_dir=root / "features", upload_dir=root / "uploads",
                        output_dir=root / "output", vgg16_weights="bsds500",
                        queue_name=f"site-{uuid.uuid4().hex[:8]}", require_worker=True,
                        precision=SUITE_PRECISION)
    server = make_server("127.0.0.1", free_port(), create_app({"SETTINGS": settings}),
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker = None
    try:  # a worker that never registers (TimeoutError) is stopped all the same
        worker = start_worker(settings)
        wait_for_workers(settings)
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        if worker is not None:
            stop_process(worker)
        server.shutdown()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """Where screenshots go: test-artifacts/ when CI collects it (CI=true), else tmp_path."""
    if os.environ.get("CI") == "true":
        ARTIFACTS.mkdir(exist_ok=True)
        return ARTIFACTS
    return tmp_path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def loaded(page, selector: str, timeout: int = 10_000) -> None:
    """Wait until the first image `selector` finds has arrived and decoded (a function, not an
    expression: Playwright evals an expression again at each poll, which the CSP refuses)."""
    page.wait_for_function("s => { const img = document.querySelector(s); "
                           "return img !== null && img.complete && img.naturalWidth > 0; }",
                           arg=selector, timeout=timeout)


@pytest.fixture
def drawings(tmp_path) -> tuple[Path, Path]:
    front, back = design_pair(13, N_PAIRS)
    (tmp_path / "front.png").write_bytes(front)
    (tmp_path / "back.png").write_bytes(back)
    return tmp_path / "front.png", tmp_path / "back.png"


def test_upload_a_pair_and_see_the_results(site, browser, drawings, artifacts):
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
    loaded(page, "img.grid")  # the element is there before its image has arrived
    assert page.evaluate("document.querySelector('img.grid').naturalWidth") > 1000
    page.screenshot(path=str(artifacts / "result-page.png"), full_page=True)

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
    page.locator("[role=alert]").wait_for(state="visible")  # the answer to the fetch
    assert "not a JPEG or PNG image" in page.locator("[role=alert]").inner_text()


def test_open_a_match_view_from_a_result_row_and_a_grid_cell(site, browser, drawings, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site)
    page.set_input_files("#front", str(drawings[0]))
    page.set_input_files("#back", str(drawings[1]))
    page.click("button[type=submit]")
    page.wait_for_selector("img.grid", timeout=90_000)
    cell = page.locator(".cells a").nth(1)  # the grid's second hit
    assert cell.get_attribute("href").endswith("/match/2")
    page.locator("#results tbody tr").first.get_by_role("link", name="Why it matches").click()
    page.wait_for_url("**/match/1")
    # A function, not an expression: Playwright evals an expression again at each poll, which
    # the page's CSP refuses (no 'unsafe-eval'); a function is evaled once, inside its call.
    page.wait_for_function("() => document.getElementById('match').naturalWidth > 0",
                           timeout=90_000)
    assert page.evaluate("document.getElementById('match').naturalWidth") >= 600
    assert page.locator("#match-status").is_hidden()
    assert "dress-0013" in page.locator("h1").inner_text()
    page.screenshot(path=str(artifacts / "match-view.png"), full_page=True)
    page.go_back()
    page.wait_for_selector("img.grid")
    page.locator(".cells a").nth(1).click()  # a grid cell opens its match view too
    page.wait_for_url("**/match/2")


def test_draw_a_box_and_search_by_that_part(site, browser, tmp_path):
    from tests.test_match import NAMES, cluttered_query

    data, box = cluttered_query(9)
    (tmp_path / "page.png").write_bytes(data)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site)
    page.set_input_files("#front", str(tmp_path / "page.png"))
    page.wait_for_selector("#front-preview", state="visible")
    area = page.locator("#front-preview").bounding_box()
    x0, y0, x1, y1 = (float(v) for v in box.split(","))
    page.mouse.move(area["x"] + x0 * area["width"], area["y"] + y0 * area["height"])
    page.mouse.down()
    page.mouse.move(area["x"] + x1 * area["width"], area["y"] + y1 * area["height"], steps=8)
    page.mouse.up()
    drawn = [float(v) for v in page.input_value("#front_box").split(",")]
    assert drawn == pytest.approx([x0, y0, x1, y1], abs=0.01)
    assert page.locator("#front-preview + .box").is_visible()
    page.click("button[type=submit]")
    page.wait_for_selector("img.grid", timeout=90_000)
    assert NAMES[9] in page.locator("#results tbody tr").first.inner_text()


DROP = """([name0, data0, name1, data1]) => {
  const file = (name, data) => new File([Uint8Array.from(atob(data), c => c.charCodeAt(0))],
                                        name, {type: "image/png"});
  const dropped = new DataTransfer();
  dropped.items.add(file(name0, data0));
  dropped.items.add(file(name1, data1));
  document.getElementById("front").closest(".drop").dispatchEvent(
    new DragEvent("drop", {dataTransfer: dropped, bubbles: true, cancelable: true}));
}"""


def test_drawings_dropped_on_the_form_replace_the_box_and_fill_both_sides(site, browser,
                                                                          drawings):
    """A drop set the input's files without its change event: a box drawn on the drawing
    before stayed and was applied to the dropped one; two drawings dropped together both went
    to the front ("front was given more than once"). back.png listed first still goes to the
    back."""
    import base64

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site)
    page.set_input_files("#front", str(drawings[1]))
    page.wait_for_selector("#front-preview", state="visible")
    area = page.locator("#front-preview").bounding_box()
    page.mouse.move(area["x"] + 0.2 * area["width"], area["y"] + 0.2 * area["height"])
    page.mouse.down()
    page.mouse.move(area["x"] + 0.6 * area["width"], area["y"] + 0.6 * area["height"], steps=4)
    page.mouse.up()
    assert page.input_value("#front_box")
    page.evaluate(DROP, [item for path in reversed(drawings)  # as a file manager lists them
                         for item in (path.name, base64.b64encode(path.read_bytes()).decode())])
    assert page.input_value("#front_box") == ""
    assert not page.locator("#front-preview + .box").is_visible()
    assert page.evaluate("['front', 'back'].map(id => [...document.getElementById(id).files]"
                         ".map(f => f.name))") == [["front.png"], ["back.png"]]
    page.wait_for_selector("#back-preview", state="visible")
    page.click("button[type=submit]")
    page.wait_for_selector("img.grid", timeout=90_000)
    assert "dress-0013" in page.locator("#results tbody tr").first.inner_text()


def test_a_refused_upload_keeps_the_other_side(site, browser, drawings, tmp_path):
    (tmp_path / "notes.png").write_text("not really a picture")
    page = browser.new_page()
    page.goto(site)
    page.set_input_files("#front", str(tmp_path / "notes.png"))
    page.set_input_files("#back", str(drawings[1]))
    page.click("button[type=submit]")
    page.locator("[role=alert]").wait_for(state="visible")  # the answer to the fetch
    assert "front image was refused" in page.locator("[role=alert]").inner_text()
    assert page.evaluate("document.getElementById('back').files[0].name") == "back.png"
    page.set_input_files("#front", str(drawings[0]))  # only the refused side is picked again
    page.click("button[type=submit]")
    page.wait_for_selector("img.grid", timeout=90_000)
    assert "dress-0013" in page.locator("#results tbody tr").first.inner_text()


def test_filter_a_search_from_the_form(site, browser, drawings, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site)
    assert f"Searching {N_PAIRS} catalogue designs" in page.locator("#searched").inner_text()
    page.set_input_files("#front", str(drawings[0]))
    page.set_input_files("#back", str(drawings[1]))
    page.fill("#k", "6")  # of the 8 jackets; the query, a dress, has few jackets in its top 6
    page.select_option("#filter-garment", ["garment:jacket"])
    page.click("button[type=submit]")
    page.wait_for_selector("img.grid", timeout=90_000)
    assert "only designs whose garment is jacket" in page.locator("#filters").inner_text()
    names = [row.locator("td").nth(3).inner_text().strip()
             for row in page.locator("#results tbody tr").all()]
    assert len(names) == 6 and all(name.startswith("jacket-") for name in names), names
    page.screenshot(path=str(artifacts / "filtered-result-page.png"), full_page=True)


def test_browse_the_catalogue_and_search_with_a_design(site, browser, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site)
    page.click("#searched a")
    page.wait_for_url("**/catalogue")
    assert page.locator(".design").count() == N_PAIRS  # one page of 48
    page.goto(f"{site}/catalogue?per_page=10")
    assert page.locator(".design").count() == 10
    page.click("a[rel=next]")
    assert "page 2 of 3" in page.locator("#count").inner_text()
    page.select_option("#filter-season", ["season:SS25"])
    page.click("#catalogue-filters button")
    page.wait_for_url("**filter=season*")
    cards = page.locator(".design")
    assert 0 < cards.count() < 10 and "season is SS25" in page.locator("#count").inner_text()
    assert all("season: SS25" in card.inner_text() for card in cards.all())
    thumb = cards.first.locator("img").first
    thumb.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    assert page.evaluate("img => img.naturalWidth", thumb.element_handle()) <= 150  # a thumbnail
    page.screenshot(path=str(artifacts / "catalogue-page.png"), full_page=True)
    # a name without spaces (the API takes 100 characters) wraps inside its card, not across
    # its neighbours
    assert page.evaluate("""card => { card.querySelector('.name').textContent = 'SS26_'.repeat(20);
                                      return card.scrollWidth <= card.clientWidth; }""",
                         cards.first.element_handle())
    name = cards.first.get_attribute("data-name")
    cards.first.locator("button").click()
    page.wait_for_selector("img.grid", timeout=90_000)
    assert name in page.locator("#results tbody tr").first.inner_text()


@pytest.fixture
def site_then_worker(indexed_settings, redis):
    """The app on a real HTTP port; a function that starts its worker process when called."""
    from web import create_app
    from worker.dev.processes import free_port

    server = make_server("127.0.0.1", free_port(), create_app({"SETTINGS": indexed_settings}),
                         threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    workers = []
    yield f"http://127.0.0.1:{server.server_port}", lambda: workers.append(
        start_worker(indexed_settings))
    for worker in workers:
        stop_process(worker)
    server.shutdown()


def test_check_a_collection_and_download_its_report(site_then_worker, browser, tmp_path, artifacts):
    from tests.zips import make_zip, season_files

    site, start_the_worker = site_then_worker
    files, rows = season_files([3, 13, 20], unrelated=2)
    (tmp_path / "season.zip").write_bytes(make_zip(files, rows))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site)
    page.set_input_files("#collection", str(tmp_path / "season.zip"))
    page.fill("#check-k", "5")
    page.click("#check-submit")
    page.wait_for_url("**/checks/*")
    assert page.locator("#progress-text").inner_text() == "0 of 5 designs done."
    assert page.locator("#check-progress").get_attribute("max") == "5"

    start_the_worker()  # the page polls; the bar fills, then the report replaces it
    page.wait_for_selector("#designs", timeout=180_000)
    names = [row.get_attribute("data-name") for row in page.locator("tr.design").all()]
    assert sorted(names[:3]) == ["copy-of-dress-0013", "copy-of-trousers-0003",
                                 "copy-of-tshirt-0020"]  # the most serious verdicts first
    assert sorted(names[3:]) == ["new-00", "new-01"]
    assert "3 with a copy or near-duplicate" in page.locator("#summary").inner_text()
    first = page.locator("tr.design").first
    assert first.locator("td.hits figure").count() == 5
    page.locator("td.hits img").first.scroll_into_view_if_needed()  # it loads lazily
    loaded(page, "td.hits img")
    page.wait_for_function(  # a function: see test_open_a_match_view_from_a_result_row_...
        "() => [...document.querySelectorAll('img.seen')].every(i => i.complete)")
    widths = page.evaluate("[...document.querySelectorAll('img.seen')].map(i => i.naturalWidth)")
    assert widths == [448] * 5  # each new design beside its hits, as the model saw it
    page.screenshot(path=str(artifacts / "check-report.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#report-csv")
    saved = Path(download.value.path()).read_bytes()
    assert saved.startswith("\ufeff".encode())  # Excel reads the names as UTF-8
    report = saved.decode("utf-8-sig").splitlines()
    assert report[0] == ("design,rank,match,similarity,verdict,front_score,back_score,error,"
                         "filters,swapped,outline_only,score,front_weight,catalogue_version,"
                         "side_copies,order,turned,garment,season")
    assert len(report) == 1 + 5 * 5
    assert any(line.startswith("copy-of-dress-0013,1,dress-0013,") and ",design," in line
               for line in report)  # its list after the copy in order of design


def test_a_search_or_check_that_expires_while_its_page_waits_says_so(site_then_worker, browser,
                                                                     drawings, tmp_path, redis):
    """The waiting pages polled a gone search or check every 2 s for as long as they stayed
    open, still showing its progress; now they show the page that says it is gone."""
    from tests.zips import make_zip, season_files

    site, _ = site_then_worker  # no worker: both stay queued until they expire
    page = browser.new_page()
    page.goto(site)
    page.set_input_files("#front", str(drawings[0]))
    page.set_input_files("#back", str(drawings[1]))
    page.click("button[type=submit]")
    page.wait_for_url("**/searches/*")
    page.wait_for_selector("text=Waiting in the queue")
    redis.delete(f"rq:job:{page.url.rsplit('/', 1)[1]}")  # what RESULT_TTL does to it
    page.wait_for_selector("text=no such search (unknown or expired id)", timeout=30_000)

    files, rows = season_files([3], unrelated=0)
    (tmp_path / "season.zip").write_bytes(make_zip(files, rows))
    page.goto(site)
    page.set_input_files("#collection", str(tmp_path / "season.zip"))
    page.click("#check-submit")
    page.wait_for_url("**/checks/*")
    redis.delete(f"pairsearch:check:{page.url.rsplit('/', 1)[1]}")
    page.wait_for_selector("text=no such check (unknown or expired id)", timeout=30_000)


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


def test_review_the_duplicate_groups_with_their_drawings(catalogue_site, browser, artifacts):
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
    page.screenshot(path=str(artifacts / "duplicates-page.png"), full_page=True)
