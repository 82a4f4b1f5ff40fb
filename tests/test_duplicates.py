"""Duplicates inside the catalogue without the model: the exact and the coarse pass agree on a
synthetic bank with seeded copies, edits update the pairs as a full pass would, and the API,
its OpenAPI document, the page and the CLI read the pairs of the current generation."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from benchmarks.perf.banks import clustered_rows, noisy_copies
from tests.http import csv_text
from tests.test_ops import CONFORMANCE
from worker.core.bank import write_bank
from worker.core.duplicates import DUPLICATES, VERDICTS, duplicate_groups, read_duplicates
from worker.core.generations import current_dir
from worker.core.results_csv import duplicates_csv
from worker.dev.services import service_env
from worker.pipeline.duplicates import after_add, after_remove, find_duplicates
from worker.pipeline.verdicts import thresholds_for

DESCRIPTOR = "grey-dir345-pw256-shape-colour"
THRESHOLDS = thresholds_for(DESCRIPTOR)
N, DIM = 600, 64


def seeded_bank(n: int = N, copies: int = 12, seed: int = 0):
    """(n, DIM) front and back banks in look-alike families, where the last `copies` rows are
    noisy copies of `copies` rows of other families; the seeded pairs (original, copy)."""
    rng = np.random.default_rng(seed)
    front, back = clustered_rows(rng, n, DIM), clustered_rows(rng, n, DIM)
    originals = rng.choice(n - copies, copies, replace=False)
    front[n - copies:] = noisy_copies(rng, front[originals], (0.95, 0.99))
    back[n - copies:] = noisy_copies(rng, back[originals], (0.95, 0.99))
    return front, back, {(int(o), n - copies + i) for i, o in enumerate(originals)}


def as_set(pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.a.tolist(), pairs.b.tolist(), strict=True))


def test_the_coarse_range_search_finds_what_the_exact_pass_finds():
    front, back, seeded = seeded_bank()
    exact = find_duplicates(front, back, THRESHOLDS, ann_min_pairs=10**9)
    coarse = find_duplicates(front, back, THRESHOLDS, ann_min_pairs=0)
    assert (exact.method, coarse.method) == ("exact", "coarse")
    assert as_set(exact) == as_set(coarse) and len(exact) > len(seeded)
    copies = exact.verdict <= 0  # judged `copy`
    assert seeded <= set(zip(exact.a[copies].tolist(), exact.b[copies].tolist(), strict=True))
    assert np.all(np.diff(exact.judged) <= 0)  # most serious first
    assert np.array_equal(exact.nearest, coarse.nearest)


FLOORED = {"copy": 0.9, "near-duplicate": 0.8, "similar": 0.55, "floor": 0.3, "margin_weight": 0.5}
ALIKE = [[1, 0, 0, 0], [0.5, np.sqrt(0.75), 0, 0]]  # 0 and 1 score 0.5


@pytest.mark.parametrize("second", [[[-1, 0, 0, 0]], []], ids=["three designs", "two designs"])
def test_a_nearest_design_s_lead_over_a_poor_second_counts_down_to_the_floor(second):
    """Three designs: 0 and 1 alike (0.5), 2 opposite to 0. Each of 0 and 1 is the other's
    nearest with a second far below the floor (0.3): its lead counts from the floor, 0.5 +
    0.5 x (0.5 - 0.3) = 0.6, `similar`; the whole lead over -1 would make them a copy (1.25).
    Two designs: neither has a second, which counts as the floor alike (no lead: 0.5, under
    `similar`, until 2026-12-07)."""
    rows = np.array(ALIKE + second, np.float32)
    pairs = find_duplicates(rows, rows.copy(), FLOORED, ann_min_pairs=10**9)
    assert as_set(pairs) == {(0, 1)}
    assert pairs.judged.tolist() == pytest.approx([0.6])
    assert [VERDICTS[v] for v in pairs.verdict.tolist()] == ["similar"]
    apart = np.array([[1, 0, 0, 0], [0.2, np.sqrt(0.96), 0, 0]], np.float32)  # under the floor
    assert len(find_duplicates(apart, apart.copy(), FLOORED, ann_min_pairs=10**9)) == 0


def test_edits_update_the_pairs_as_a_full_pass_would():
    front, back, seeded = seeded_bank()
    before = find_duplicates(front[:N - 5], back[:N - 5], THRESHOLDS, 10**9)
    added = after_add(before, front, back, N - 5, THRESHOLDS, 10**9)
    full = find_duplicates(front, back, THRESHOLDS, 10**9)
    assert as_set(added) == as_set(full) and np.array_equal(added.nearest, full.nearest)
    original, copy = max(seeded)
    keep = np.arange(N) != original
    removed = after_remove(full, front[keep], back[keep], original, THRESHOLDS, 10**9)
    again = find_duplicates(front[keep], back[keep], THRESHOLDS, 10**9)
    assert as_set(removed) == as_set(again) and np.array_equal(removed.nearest, again.nearest)
    assert (original, copy) in as_set(full) and len(removed) < len(full)


def test_a_design_drawn_as_sketches_is_judged_without_its_lead():
    """Among coloured drawings, a design sketched on both sides is judged on its score alone
    (every sketch of a garment is the same empty garment: its nearest's lead is chance);
    from a coloured design's side, or in a catalogue of sketches, the lead counts as before.
    The flags travel through edits and the stored list (one written before them: none)."""
    from worker.core.duplicates import DuplicatePairs

    front, back, seeded = seeded_bank()
    plain = find_duplicates(front, back, THRESHOLDS, 10**9)
    led = [(a, b) for a, b, s, j in zip(plain.a.tolist(), plain.b.tolist(), plain.score.tolist(),
                                        plain.judged.tolist(), strict=True) if j > s + 0.01]
    (a, b), (c, d) = led[:2]  # two pairs judged above their score by a lead
    sketched = np.zeros((N, 2), bool)
    sketched[[a, b]] = True  # both designs of the first pair: sketches
    sketched[c, 0] = True  # one side of the second pair's first design only
    flagged = find_duplicates(front, back, THRESHOLDS, 10**9, sketched=sketched)

    def judged_of(pairs, x, y):
        return dict(zip(zip(pairs.a.tolist(), pairs.b.tolist(), strict=True),
                        pairs.judged.tolist(), strict=True)).get((x, y))

    score = dict(zip(zip(plain.a.tolist(), plain.b.tolist(), strict=True), plain.score.tolist(),
                     strict=True))[(a, b)]
    if score >= flagged.min_score:
        assert judged_of(flagged, a, b) == pytest.approx(score)
    else:  # judged on its score alone, it is not listed
        assert judged_of(flagged, a, b) is None
    assert judged_of(flagged, c, d) == judged_of(plain, c, d)
    others = {p: j for p, j in zip(zip(plain.a.tolist(), plain.b.tolist(), strict=True),
                                   plain.judged.tolist(), strict=True) if a not in p and b not in p}
    assert all(judged_of(flagged, *p) == j for p, j in others.items())
    assert np.array_equal(flagged.sketched, sketched)
    sketches = np.ones((N, 2), bool)  # a catalogue of sketches: compared whole, lead and all
    assert judged_of(find_duplicates(front, back, THRESHOLDS, 10**9, sketched=sketches),
                     a, b) == judged_of(plain, a, b)

    later = max(a, b, c) + 1  # the flags of rows an edit adds, and after one is removed
    before = find_duplicates(front[:later], back[:later], THRESHOLDS, 10**9,
                             sketched=sketched[:later])
    added = after_add(before, front, back, later, THRESHOLDS, 10**9, sketched[later:])
    assert as_set(added) == as_set(flagged)
    np.testing.assert_allclose(added.judged, flagged.judged, atol=1e-5)
    gone = next(r for r in range(N) if r not in (a, b, c, d))
    keep = np.arange(N) != gone
    removed = after_remove(flagged, front[keep], back[keep], gone, THRESHOLDS, 10**9)
    again = find_duplicates(front[keep], back[keep], THRESHOLDS, 10**9, sketched=sketched[keep])
    assert as_set(removed) == as_set(again) and np.array_equal(removed.sketched, sketched[keep])

    unknown = find_duplicates(front[:later], back[:later], THRESHOLDS, 10**9)  # from before them
    assert after_add(unknown, front, back, later, THRESHOLDS, 10**9, sketched[later:]).sketched \
        is None  # not known until the next build: judged as before
    stored = DuplicatePairs.from_bytes(flagged.to_bytes())
    assert np.array_equal(stored.sketched, sketched)
    assert DuplicatePairs.from_bytes(plain.to_bytes()).sketched is None


def write_generation(features_dir, front, back, names=None, duplicates=True,
                     descriptor=DESCRIPTOR, sketched=None) -> dict:
    """A real generation (banks, manifest, and the duplicates file unless told not to, with
    the line-sketch flags `sketched`)."""
    names = names or [f"design-{i:04d}" for i in range(len(front))]
    manifest = {"n_pairs": len(front), "dim": DIM, "dtype": "float32", "descriptor": descriptor,
                "verdicts": THRESHOLDS, "names": names,
                "fronts": [f"images/{n}_front.png" for n in names],
                "backs": [f"images/{n}_back.png" for n in names]}
    extra = {DUPLICATES: find_duplicates(front, back, THRESHOLDS, 10**9,
                                         sketched=sketched).to_bytes()} if duplicates else None
    write_bank(features_dir, front, back, manifest, extra_files=extra)
    return manifest


@pytest.fixture
def synthetic(settings, redis):
    """The app over a synthetic generation with seeded copies; the expected groups."""
    from web import create_app

    front, back, seeded = seeded_bank()
    manifest = write_generation(settings.features_dir, front, back)
    pairs = find_duplicates(front, back, THRESHOLDS, 10**9)
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    return client, settings, manifest, pairs, seeded


def test_the_api_lists_the_groups_at_the_verdict_asked(synthetic):
    client, _, manifest, pairs, seeded = synthetic
    names = manifest["names"]
    body = client.get("/api/duplicates").get_json()
    assert body == {"groups": duplicate_groups(pairs, names, "near-duplicate")}
    grouped = [set(g["designs"]) for g in body["groups"]]
    for a, b in seeded:
        assert any({names[a], names[b]} <= g for g in grouped)
    for group in body["groups"]:
        assert len(group["designs"]) >= 2 and set(group["designs"]) == {
            n for p in group["pairs"] for n in (p["a"], p["b"])}
        assert all(p["verdict"] in ("copy", "near-duplicate") for p in group["pairs"])
    loose = client.get("/api/duplicates?min_verdict=similar").get_json()["groups"]
    strict = client.get("/api/duplicates?min_verdict=copy").get_json()["groups"]
    count = [sum(len(g["pairs"]) for g in gs) for gs in (strict, body["groups"], loose)]
    assert count[0] <= count[1] < count[2]


def test_the_csv_has_a_row_per_pair_of_the_groups_the_json_lists(synthetic):
    client = synthetic[0]
    for verdict in ("copy", "similar"):
        groups = client.get(f"/api/duplicates?min_verdict={verdict}").get_json()["groups"]
        response = client.get(f"/api/duplicates.csv?min_verdict={verdict}")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert response.headers["Content-Disposition"] == \
            f'attachment; filename="duplicates-{verdict}.csv"'
        header, *rows = csv.reader(io.StringIO(csv_text(response)))
        assert header == ["a", "b", "similarity", "verdict", "group", "sketches"]
        assert rows == [[p["a"], p["b"], str(p["similarity"]), p["verdict"], str(number), ""]
                        for number, g in enumerate(groups, 1) for p in g["pairs"]]
    refused = client.get("/api/duplicates.csv?min_verdict=nope")
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_min_verdict"
    page = client.get("/duplicates?min_verdict=similar").get_data(as_text=True)
    assert 'id="duplicates-csv" href="/api/duplicates.csv?min_verdict=similar"' in page
    assert 'src="/catalogue/thumbs/' in page and 'src="/database/' not in page  # thumbnails
    pair = {"a": "=HYPERLINK(1)", "b": "b", "similarity": 99, "verdict": "copy"}
    assert duplicates_csv([{"designs": ["=HYPERLINK(1)", "b"], "pairs": [pair]}]).splitlines() \
        == ["a,b,similarity,verdict,group,sketches", "'=HYPERLINK(1),b,99,copy,1,"]  # no formulas run


def test_designs_drawn_as_sketches_are_named_in_their_group_and_marked_on_the_page(
        settings, redis):
    from web import create_app

    front, back, seeded = seeded_bank()
    original, copy = min(seeded)
    sketched = np.zeros((N, 2), bool)
    sketched[[original, copy]] = True
    names = write_generation(settings.features_dir, front, back, sketched=sketched)["names"]
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    groups = client.get("/api/duplicates?min_verdict=similar").get_json()["groups"]
    marked = [g for g in groups if g["sketches"]]
    assert len(marked) == 1 and marked[0]["sketches"] == [names[original], names[copy]]
    assert set(marked[0]["sketches"]) <= set(marked[0]["designs"])
    page = client.get("/duplicates?min_verdict=similar").get_data(as_text=True)
    assert page.count("· line sketches") == 2 and 'id="sketches-judged"' in page
    pairs = list(csv.DictReader(io.StringIO(csv_text(client.get(
        "/api/duplicates.csv?min_verdict=similar")))))
    assert [p["sketches"] for p in pairs if {p["a"], p["b"]} == {names[original], names[copy]}
            ] == ["a b"]  # the sketched pair, both its designs named
    assert all(p["sketches"] == " ".join(s for s in ("a", "b") if p[s] in marked[0]["sketches"])
               for p in pairs)  # each row names its pair's sketched designs, no others
    write_generation(settings.features_dir, front, back, names)  # no flags: none marked
    groups = client.get("/api/duplicates?min_verdict=similar").get_json()["groups"]
    assert groups and not any(g["sketches"] for g in groups)
    assert 'id="sketches-judged"' not in client.get("/duplicates?min_verdict=similar").get_data(
        as_text=True)


def test_a_bad_min_verdict_is_a_400_naming_it(synthetic):
    client = synthetic[0]
    for bad in ("duplicate", "COPY", ""):
        response = client.get(f"/api/duplicates?min_verdict={bad}")
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_min_verdict"
        assert repr(bad) in response.get_json()["message"]
    page = client.get("/duplicates?min_verdict=nope")
    assert page.status_code == 400 and b"got &#39;nope&#39;" in page.data
    twice = client.get("/api/duplicates?min_verdict=copy&min_verdict=similar")
    assert (twice.status_code, twice.get_json()) == (400, {
        "error": "invalid_min_verdict", "message": "min_verdict was given more than once"})


def test_no_index_or_one_without_duplicates_is_503_no_index(client, settings):
    for url in ("/api/duplicates", "/api/duplicates.csv"):
        response = client.get(url)
        assert response.status_code == 503 and response.get_json()["error"] == "no_index"
        # the folder named by its setting, not by the server's path
        message = response.get_json()["message"]
        assert "in FEATURES_DIR (no manifest.json)" in message, message
        assert str(settings.features_dir) not in message
    assert response.headers["Retry-After"]
    health = client.get("/healthz").get_json()
    assert health["index_error"].startswith("no feature banks in FEATURES_DIR"), health
    ready = client.get("/readyz").get_json()["checks"]
    assert ready["index"]["reason"].startswith("no feature banks in FEATURES_DIR"), ready
    assert str(settings.output_dir) not in ready["output_dir"]["reason"], ready
    front, back, _ = seeded_bank(50, 2)
    write_generation(settings.features_dir, front, back, duplicates=False)
    response = client.get("/api/duplicates")
    assert response.status_code == 503 and "before duplicates were listed" in response.get_json()[
        "message"]


def test_the_pairs_read_are_those_of_the_current_generation(synthetic):
    client, settings, manifest, _, _ = synthetic
    folder = current_dir(settings.features_dir)
    assert read_duplicates(settings.features_dir)[0]["generation"] == folder.name
    (folder / DUPLICATES).write_bytes((folder / DUPLICATES).read_bytes()[:-10])  # damaged
    response = client.get("/api/duplicates")
    assert response.status_code == 503 and "corrupt" in response.get_json()["message"]
    front, back, _ = seeded_bank(80, 3, seed=5)  # the next generation: its own pairs
    names = [f"next-{i}" for i in range(80)]
    write_generation(settings.features_dir, front, back, names)
    groups = client.get("/api/duplicates").get_json()["groups"]
    assert groups and all(n.startswith("next-") for g in groups for n in g["designs"])


def test_the_page_shows_each_group_with_its_drawings(synthetic):
    client, settings, manifest, pairs, _ = synthetic
    page = client.get("/duplicates").get_data(as_text=True)
    groups = duplicate_groups(pairs, manifest["names"], "near-duplicate")
    assert page.count('class="card group"') == len(groups)
    first = groups[0]["designs"][0]
    for side in ("front", "back"):  # the thumbnail, linked to the drawing
        assert (f'<a href="/database/images/{first}_{side}.png"><img '
                f'src="/catalogue/thumbs/images/{first}_{side}.png"') in page
    assert 'href="/duplicates"' in client.get("/").get_data(as_text=True)  # the nav links it
    assert "judged by a search's thresholds" in page  # this descriptor's list has none its own
    assert "has no thresholds of its own for the list" in " ".join(page.split())
    assert "make index</code> lists it anew" not in page  # re-indexing would change nothing
    write_generation(settings.features_dir, *seeded_bank()[:2],
                     descriptor="grey-dir345-lw256-shape-colour")  # one calibrated for the list
    page = " ".join(client.get("/duplicates").get_data(as_text=True).split())
    assert "judged on a scale of its own" in page and "counts a quarter as much" in page
    assert "may read differently in a search" in page  # why a search may say otherwise


def test_the_page_shows_a_page_of_groups_and_a_large_group_in_part(synthetic):
    """A long list (thousands of groups at `similar` in a large catalogue) is paged, and a
    group of many look-alikes shows its first designs and pairs, the CSV all of them."""
    from web.duplicates import SHOWN_DESIGNS, SHOWN_PAIRS

    client, settings, manifest, pairs, _ = synthetic
    groups = duplicate_groups(pairs, manifest["names"], "near-duplicate")
    assert len(groups) >= 5
    first = client.get("/duplicates?per_page=2").get_data(as_text=True)
    second = client.get("/duplicates?per_page=2&page=2").get_data(as_text=True)
    # the verdict chooser keeps the page's size (it was back to 20 a page)
    assert '<input type="hidden" name="per_page" value="2">' in first
    assert 'name="per_page"' not in client.get("/duplicates").get_data(as_text=True)
    for page, shown in ((first, groups[:2]), (second, groups[2:4])):
        assert page.count('class="card group"') == 2
        assert all(f"{g['designs'][0]}_front.png" in page for g in shown)
    assert "<h2>Group 3 · " in second and "<h2>Group 1 · " not in second  # numbered as the CSV
    pages = -(-len(groups) // 2)
    assert f"page 2 of {pages}" in " ".join(second.split()) and 'rel="prev"' in second
    past = client.get(f"/duplicates?per_page=2&page={pages + 1}").get_data(as_text=True)
    assert 'class="card group"' not in past and "past the last page" in " ".join(past.split())
    for bad in ("page=0", "per_page=201", "page=x"):
        assert client.get(f"/duplicates?{bad}").status_code == 400, bad

    front, back, _ = seeded_bank(200, 0, seed=3)  # 70 copies of one design: one group of 71
    rng = np.random.default_rng(1)
    front[1:71], back[1:71] = (noisy_copies(rng, np.repeat(side[:1], 70, 0), (0.995, 0.999))
                               for side in (front, back))
    write_generation(settings.features_dir, front, back)
    page = " ".join(client.get("/duplicates").get_data(as_text=True).split())
    assert "<h2>Group 1 · 71 designs</h2>" in page
    assert f"and {71 - SHOWN_DESIGNS} more designs" in page
    assert f"and {71 * 70 // 2 - SHOWN_PAIRS} more pairs" in page
    assert page.count("<tr><td>design-") <= SHOWN_PAIRS * 2
    big = client.get("/api/duplicates").get_json()["groups"][0]
    assert (len(big["designs"]), len(big["pairs"])) == (71, 71 * 70 // 2)  # the JSON: all


def test_the_cli_writes_a_csv_row_per_pair(synthetic, tmp_path):
    _, settings, manifest, pairs, _ = synthetic
    out = tmp_path / "d.csv"
    proc = subprocess.run([sys.executable, "-m", "worker.duplicates", "--min-verdict",
                           "similar", "--csv", str(out)], env=service_env(settings),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith("\ufeff".encode())  # for Excel, as the download
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    groups = duplicate_groups(pairs, manifest["names"], "similar")
    assert len(rows) == sum(len(g["pairs"]) for g in groups)
    assert {(r["a"], r["b"], int(r["group"])) for r in rows} == {
        (p["a"], p["b"], i) for i, g in enumerate(groups, 1) for p in g["pairs"]}
    bad = subprocess.run([sys.executable, "-m", "worker.cli.duplicates", "--min-verdict", "x"],
                         env=service_env(settings), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'x'" in bad.stderr
    gone = dataclasses.replace(settings, features_dir=tmp_path / "none")
    missing = subprocess.run([sys.executable, "-m", "worker.cli.duplicates"],
                             env=service_env(gone), capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no feature banks" in missing.stderr
    # a descriptor without calibrated thresholds: the page says none can be judged; the
    # command said "0 group(s)", a clean catalogue
    plain = dataclasses.replace(settings, features_dir=tmp_path / "plain")
    write_generation(plain.features_dir, *seeded_bank()[:2], descriptor="flatten")
    unjudged = subprocess.run([sys.executable, "-m", "worker.cli.duplicates"],
                              env=service_env(plain), capture_output=True, text=True, timeout=60)
    assert unjudged.returncode == 1 and "cannot be judged and none is listed" in unjudged.stderr


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_endpoint_conforms_to_its_openapi_document(synthetic, mode):
    client = synthetic[0]
    schema = schemathesis.openapi.from_wsgi("/openapi.json", client.application)
    doc = json.loads(client.get("/openapi.json").data)
    for path in ("/api/duplicates", "/api/duplicates.csv"):
        assert set(doc["paths"][path]["get"]["responses"]) == {"200", "400", "503"}

        @given(case=schema[path]["GET"].as_strategy(generation_mode=mode))
        @hypothesis_settings(max_examples=20, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        def fuzz(case):
            case.call_and_validate(checks=[not_a_server_error, *CONFORMANCE])

        fuzz()


def test_the_list_judges_a_nearest_design_by_its_thresholds_lead_weight():
    front, back, _ = seeded_bank()
    weighed = {w: find_duplicates(front, back, {**THRESHOLDS, "margin_weight": w}, 10**9)
               for w in (0.0, 0.25, 1.0)}
    lead = {w: dict(zip(zip(p.a.tolist(), p.b.tolist(), strict=True),
                        (p.judged - p.score).tolist(), strict=True))
            for w, p in weighed.items()}
    assert max(lead[0.0].values()) == pytest.approx(0.0, abs=1e-6)  # the score alone
    shared = [pair for pair, extra in lead[1.0].items() if extra > 1e-3 and pair in lead[0.25]]
    assert shared
    for pair in shared:  # a quarter of the lead a search's first hit gets
        assert lead[0.25][pair] == pytest.approx(0.25 * lead[1.0][pair], abs=1e-5)
    assert len(weighed[0.25]) < len(weighed[1.0])


def test_a_descriptor_that_cannot_judge_pairs_says_so_and_offers_no_other_verdict(settings,
                                                                                   redis):
    """An index whose descriptor has no thresholds lists no pair: the page said "No designs
    ... are judged similar or more alike" and to "Choose similar to see more" while showing
    similar."""
    from web import create_app

    front, back, _ = seeded_bank()
    write_bank(settings.features_dir, front, back, {
        "n_pairs": len(front), "dim": DIM, "dtype": "float32", "descriptor": "uncalibrated",
        "names": [f"d{i}" for i in range(len(front))],
        "fronts": [f"f{i}.png" for i in range(len(front))],
        "backs": [f"b{i}.png" for i in range(len(front))]},
        extra_files={DUPLICATES: find_duplicates(front, back, None, 10**9).to_bytes()})
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    for verdict in ("copy", "similar"):
        page = " ".join(client.get(f"/duplicates?min_verdict={verdict}").get_data(
            as_text=True).split())
        assert "its pairs cannot be judged and none is listed" in page
        assert "No pairs are listed: this index's descriptor cannot judge them" in page
        assert "Choose <em>similar</em>" not in page and "judged similar or more" not in page


def test_a_list_is_judged_by_the_thresholds_it_was_made_with():
    from worker.core.settings import DEFAULT_DESCRIPTOR as default
    from worker.pipeline.verdicts import (
        CALIBRATED_DUPLICATES,
        duplicate_thresholds_for,
        duplicate_thresholds_in,
    )

    assert duplicate_thresholds_for(default) == CALIBRATED_DUPLICATES[default]
    assert duplicate_thresholds_for(DESCRIPTOR) == THRESHOLDS  # never calibrated: a search's
    stored = {**THRESHOLDS, "copy": 0.99}
    assert duplicate_thresholds_in({"descriptor": default,
                                    "duplicates": {"thresholds": stored}}) == stored
    assert duplicate_thresholds_in({"descriptor": default}) == CALIBRATED_DUPLICATES[default]
    before = {"descriptor": default, "verdicts": thresholds_for(default), "duplicates": {"pairs": 3}}
    assert duplicate_thresholds_in(before) == thresholds_for(default)  # listed as it was
