"""Filters on the catalogue's further columns (worker.core.filters), without the model: the
syntax, AND/OR, refusals naming the column or value, the mask applied before top k on the
exact and the coarse path, the columns kept by the loader, the sample and catalogue edits,
and the web's checks, `/catalogue` pages and front page on a real generation of random banks."""

from __future__ import annotations

import html
import io
import itertools
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair
from worker.core.bank import FeatureBank, write_bank
from worker.core.catalogue import catalogue_csv, load_catalogue
from worker.core.contract import SearchOptions
from worker.core.filters import FilterError, allowed_rows, describe, facets, parse_filter_fields
from worker.core.whitening import l2_normalise
from worker.pipeline.ann import EXACT_FILTERED, with_coarse_index
from worker.pipeline.ranking import top_k

CREATED = "2025-01-02T03:04:05+00:00"


@pytest.fixture(scope="module")
def catalogue(catalogue_dir):
    return load_catalogue(catalogue_dir)


def rows_where(catalogue, **wanted) -> set[int]:
    return {i for i in range(len(catalogue))
            if all(catalogue.extra[c][i] in vs for c, vs in wanted.items())}


# --- syntax, AND/OR, refusals -------------------------------------------------------------

def test_filter_fields_parse_to_sorted_columns_and_values():
    assert parse_filter_fields(["season:SS26", " garment : trousers, dress ", "", "garment:jacket"]) \
        == {"garment": ["dress", "jacket", "trousers"], "season": ["SS26"]}
    for bad in ("garment", ":dress", "garment:", "garment: , ", "x" * 1001 + ":y"):
        with pytest.raises(FilterError, match="column:value"):
            parse_filter_fields([bad])
    # a multi-select sends a field per value chosen: 60 of a column's values are one filter
    assert parse_filter_fields([f"sku:S{i}" for i in range(60)]) == {
        "sku": sorted(f"S{i}" for i in range(60))}
    with pytest.raises(FilterError, match="at most 500 filter fields"):
        parse_filter_fields(["garment:dress"] * 501)
    with pytest.raises(FilterError, match="at most 50,000 in all"):
        parse_filter_fields([f"sku:{i:0900d}" for i in range(60)])


def test_the_contract_carries_filters_parsed_or_as_parsed():
    fields = SearchOptions(filters=["season:SS25", "garment:dress,jacket"]).filters
    assert fields == {"garment": ["dress", "jacket"], "season": ["SS25"]}
    assert SearchOptions(filters=fields).filters == fields  # as the job's kwargs give it back
    assert SearchOptions().filters == {}
    for bad in (["garment"], 5, {"garment": "dress"}, {"garment": [1]}):
        with pytest.raises(ValueError, match="column:value"):
            SearchOptions(filters=bad)


def test_k_of_any_length_is_read_in_the_service_s_words():
    """int() refuses past 4,300 digits, leading zeros counted, with Python's advice."""
    assert SearchOptions(k="0" * 5000 + "5").k == 5 and SearchOptions(k=" +7 ").k == 7
    from worker.core.numerals import PAST, whole

    assert [whole(t) for t in ("12", " 007 ", "", "1_0", "\u00b2", "+3", "9" * 5000)] == \
        [12, 7, None, None, None, None, PAST]
    assert [whole(t, signed=True) for t in ("+3", "-" + "9" * 20, "--1")] == [3, -PAST, None]
    for given in ("9" * 5000, "0" * 5000 + "1" * 12, "-" + "9" * 20):
        with pytest.raises(ValueError, match="k must be between 1 and 100") as refused:
            SearchOptions(k=given)
        assert "int_max_str_digits" not in str(refused.value)


def test_values_are_ored_and_columns_anded(catalogue):
    def passing(*fields):
        return set(np.flatnonzero(allowed_rows(parse_filter_fields(fields), catalogue)))

    trousers, jackets = rows_where(catalogue, garment={"trousers"}), rows_where(catalogue, garment={"jacket"})
    ss26 = rows_where(catalogue, season={"SS26"})
    assert trousers and jackets and ss26 and trousers & ss26
    assert passing("garment:trousers") == trousers
    assert passing("garment:trousers,jacket") == trousers | jackets
    assert passing("garment:trousers", "garment:jacket") == trousers | jackets  # a multi-select
    assert passing("garment:trousers,jacket", "season:SS26") == (trousers | jackets) & ss26
    assert allowed_rows({}, catalogue) is None
    assert describe({"garment": ["dress", "jacket"], "season": ["SS25"]}) == \
        "garment is dress or jacket, and season is SS25"


def test_unknown_column_or_value_is_refused_by_name(catalogue):
    with pytest.raises(FilterError, match="unknown filter column 'colour'.*garment, season"):
        allowed_rows({"colour": ["red"]}, catalogue)
    with pytest.raises(FilterError, match="no design has garment 'gown'.*'dress'"):
        allowed_rows({"garment": ["dress", "gown"]}, catalogue)


# --- before top k: exact and coarse -------------------------------------------------------

@pytest.fixture(scope="module")
def bank():
    rng = np.random.default_rng(4)
    n, dim = 3000, 16
    return FeatureBank(l2_normalise(rng.normal(size=(n, dim))),
                       l2_normalise(rng.normal(size=(n, dim))), manifest={})


def brute_force_among(bank, allowed, q_front, q_back, k, sides_unknown):
    """The exact top k of the allowed rows alone, as catalogue rows."""
    rows = np.flatnonzero(allowed)
    sub = FeatureBank(bank.front[rows], bank.back[rows], manifest={})
    return [(h.rank, int(rows[h.index]), h.swapped, round(h.score, 5))
            for h in top_k(sub, q_front, q_back, k, 0.5, sides_unknown)]


@pytest.mark.parametrize("every", [2, 10, 300])  # 1500, 300 and 10 rows allowed
@pytest.mark.parametrize("sides_unknown", [False, True])
def test_a_filtered_search_returns_k_allowed_hits_on_both_paths(bank, every, sides_unknown):
    rng = np.random.default_rng(every)
    allowed = np.zeros(len(bank), dtype=bool)
    allowed[rng.permutation(len(bank))[:len(bank) // every]] = True
    q_front, q_back = bank.front[0], bank.back[0]  # row 0: allowed or not
    indexed = with_coarse_index(bank, 0, min_candidates=200)  # the service's: the whole bank
    k = 20
    want = brute_force_among(bank, allowed, q_front, q_back, k, sides_unknown)
    assert len(want) == min(k, allowed.sum())
    for searched in (bank, indexed):
        hits = top_k(searched, q_front, q_back, k, 0.5, sides_unknown, allowed)
        assert all(allowed[h.index] for h in hits)
        assert [(h.rank, h.index, h.swapped, round(h.score, 5)) for h in hits] == want
    rows = indexed.coarse.candidates(q_front, q_back, k, 0.5, sides_unknown, allowed)
    assert rows is not None and allowed[rows].all()
    if allowed.sum() <= EXACT_FILTERED * indexed.coarse.n_candidates(k):  # few: those, all
        assert list(rows) == list(np.flatnonzero(allowed))
    else:  # faiss's best, more of them as the filter leaves out half, the others dropped
        assert k <= len(rows) < allowed.sum()


def against_the_query(bank, share: float) -> np.ndarray:
    """Allowed: the half of the rows the query (row 0) scores lowest and a `share` of the other
    half: a filter against the query, as a garment other than its own."""
    scores = bank.front @ bank.front[0] + bank.back @ bank.back[0]
    high = scores >= np.median(scores)
    return ~high | (high & (np.random.default_rng(1).random(len(bank)) < share))


def scan_depths(indexed) -> list[int]:
    """The depth of each scan the coarse index makes from now on."""
    depths = []
    scan = indexed.coarse._scan
    indexed.coarse._scan = lambda *args: depths.append(args[-1]) or scan(*args)
    return depths


def assert_brute_force_hits(bank, indexed, allowed, k: int, sides_unknown: bool) -> None:
    """The index's top k of row 0's query among the allowed rows are brute force's."""
    q_front, q_back = bank.front[0], bank.back[0]
    want = brute_force_among(bank, allowed, q_front, q_back, k, sides_unknown)
    hits = top_k(indexed, q_front, q_back, k, 0.5, sides_unknown, allowed)
    assert [(h.rank, h.index, h.swapped, round(h.score, 5)) for h in hits] == want


@pytest.mark.parametrize("share", [0.2, 0.3])
def test_a_filter_the_best_rows_mostly_fail_is_scanned_deeper(bank, share):
    """The scan's best hold too few of the rows `against_the_query` allows at first, so it
    looks deeper, at least twice as deep each time, until it has as many as an unfiltered
    search re-scores (50 here); the hits are brute force's among the allowed."""
    allowed = against_the_query(bank, share)
    indexed = with_coarse_index(bank, 0, min_candidates=50, per_k=1)
    depths = scan_depths(indexed)
    rows = indexed.coarse.candidates(bank.front[0], bank.back[0], 20, 0.5, False, allowed)
    assert len(depths) >= 2 and all(b >= 2 * a for a, b in itertools.pairwise(depths))
    assert rows is not None and allowed[rows].all() and len(rows) == 50  # its best 50 allowed
    assert_brute_force_hits(bank, indexed, allowed, 20, False)


@pytest.mark.parametrize("share", [0.2, 0.3])
def test_sides_unknown_each_orientation_gets_its_best_allowed_rows(bank, share):
    """As above with sides unknown: the direct and the crossed vector each keep their own
    best 50 allowed rows (the direct one's filter fails most of its best rows, the crossed
    one's much less), and the hits are brute force's."""
    allowed = against_the_query(bank, share)
    indexed = with_coarse_index(bank, 0, min_candidates=50)  # 10 a hit: k = 5
    rows = indexed.coarse.candidates(bank.front[0], bank.back[0], 5, 0.5, True, allowed)
    assert rows is not None and allowed[rows].all() and 50 < len(rows) <= 100
    vectors = np.stack(indexed.coarse._vectors(bank.front[0], bank.back[0], 0.5, True))
    codes, ranked = indexed.coarse.index.search(vectors, len(bank))  # each one's whole order
    for scores, order in zip(codes, ranked, strict=True):  # counted alone, not together:
        kept = allowed[order]  # its allowed rows scoring above its 50th (ties either way)
        assert set(order[kept & (scores > scores[kept][49])]) <= set(rows)
    assert_brute_force_hits(bank, indexed, allowed, 5, True)


def test_a_filter_that_stops_just_short_gives_up_after_a_few_scans(bank):
    """Allowed: the 49 rows the query scores best and the 1,000 it scores worst: the scan
    keeps 49 of the 50 it wants until it reaches the bottom. It deepens at least twofold
    each time and stops past a quarter of the bank: the whole bank is searched, masked."""
    order = np.argsort(-(bank.front @ bank.front[0] + bank.back @ bank.back[0]))
    allowed = np.zeros(len(bank), dtype=bool)
    allowed[order[:49]] = allowed[order[-1000:]] = True
    indexed = with_coarse_index(bank, 0, min_candidates=50, per_k=1)
    depths = scan_depths(indexed)
    assert indexed.coarse.candidates(bank.front[0], bank.back[0], 20, 0.5, False, allowed) is None
    assert 1 <= len(depths) <= 3 and max(depths) <= len(bank) // EXACT_FILTERED
    assert_brute_force_hits(bank, indexed, allowed, 20, False)


def test_a_filter_the_best_rows_fail_is_searched_whole(bank):
    """Allowed: the half of the rows the query scores lowest. The scan's best (twice the
    candidates, as half the rows pass) hold none of them: the whole bank is searched, masked."""
    allowed = against_the_query(bank, 0.0)
    indexed = with_coarse_index(bank, 0, min_candidates=200)
    assert indexed.coarse.candidates(bank.front[0], bank.back[0], 20, 0.5, False, allowed) is None
    assert_brute_force_hits(bank, indexed, allowed, 20, False)


def test_nothing_allowed_finds_nothing(bank):
    none = np.zeros(len(bank), dtype=bool)
    assert top_k(bank, bank.front[0], None, 5, 0.5, False, none) == []
    assert top_k(with_coarse_index(bank, 0), bank.front[0], None, 5, 0.5, False, none) == []


# --- the columns: loader, sample, edits ---------------------------------------------------

@pytest.mark.parametrize("field", [
    "", "  ", "a:b", " a : b ", "a:", ":b", " :b", "a:,", "a: , ", "a:b,c", "a:b:c", "1e100",
    "a b:c", "a:,b", "\u3000a:b\u3000", "a\n:b", "\na\u2028:,\n:", "a:\nb",
    "g:" + "a" * 998, "g:" + "a" * 999, " g:" + "a" * 997])
def test_the_openapi_filter_field_accepts_what_the_code_accepts(field):
    """The document's pattern and length (schemathesis generates from them) against the
    parser: the same verdict for blank fields, colons, commas, line breaks and the limit."""
    import re

    from pydantic import TypeAdapter

    from web.schemas import FilterField

    schema = TypeAdapter(FilterField).json_schema()
    documented = len(field) <= schema["maxLength"] and re.search(schema["pattern"], field)
    try:
        parse_filter_fields([field])
        parsed = True
    except FilterError:
        parsed = False
    assert bool(documented) == parsed


def test_the_sample_has_garment_and_season_columns(catalogue):
    assert list(catalogue.extra) == ["garment", "season"]
    assert all(name.startswith(garment) for name, garment
               in zip(catalogue.names, catalogue.extra["garment"], strict=True))
    assert set(catalogue.extra["season"]) == {"SS25", "AW25", "SS26"}


def test_the_loader_keeps_further_columns_as_strings_empty_allowed(tmp_path, catalogue_dir):
    shutil.copytree(catalogue_dir / "images", tmp_path / "images")
    (tmp_path / "pairs.csv").write_text(
        "name,front,back,collection,tags,a:b\n"
        "a,images/dress-0001_front.png,images/dress-0001_back.png, 007 ,,v\n"
        "b,images/dress-0005_front.png,images/dress-0005_back.png,NA,x,v\n"
        'c,images/dress-0009_front.png,images/dress-0009_back.png,NA,"x,y",v\n')
    cat = load_catalogue(tmp_path)
    assert cat.extra == {"collection": ["007", "NA", "NA"], "tags": ["", "x", "x,y"],
                         "a:b": ["v", "v", "v"]}
    # "x,y" and the column "a:b" cannot be named in a filter field: not offered
    assert facets(cat) == {"collection": ["007", "NA"], "tags": ["x"]}
    with pytest.raises(FilterError, match="the catalogue's columns are: collection, tags$"):
        allowed_rows(parse_filter_fields(["a:b:v"]), cat)  # the column read is "a"
    assert cat.columns_of(1) == {"collection": "NA", "tags": "x", "a:b": "v"}  # shown all the same
    assert set(np.flatnonzero(allowed_rows({"collection": ["007"]}, cat))) == {0}


def test_a_header_with_spaces_names_its_columns_as_a_filter_does(tmp_path, catalogue_dir):
    """`name, front, back, season`: the form offered " season", which the filter (stripped)
    then refused as unknown."""
    from worker.core.catalogue import CatalogueError

    shutil.copytree(catalogue_dir / "images", tmp_path / "images")
    (tmp_path / "pairs.csv").write_text(
        "name, front ,back, season\n"
        "a,images/dress-0001_front.png,images/dress-0001_back.png,SS25\n")
    cat = load_catalogue(tmp_path)
    assert cat.extra == {"season": ["SS25"]} and facets(cat) == {"season": ["SS25"]}
    assert allowed_rows(parse_filter_fields([" season :SS25"]), cat).all()
    (tmp_path / "pairs.csv").write_text(
        "name,front,back,season, season\n"
        "a,images/dress-0001_front.png,images/dress-0001_back.png,SS25,AW25\n")
    with pytest.raises(CatalogueError, match=r"column\(s\) \['season'\] appear twice"):
        load_catalogue(tmp_path)
    (tmp_path / "pairs.csv").write_text(  # exactly the same name: pandas would rename it
        "name,front,back,season,season\n"
        "a,images/dress-0001_front.png,images/dress-0001_back.png,SS25,AW25\n")
    with pytest.raises(CatalogueError, match=r"column\(s\) \['season'\] appear twice"):
        load_catalogue(tmp_path)
    for empty in ("", "\n\n"):  # pandas' EmptyDataError stopped the worker at start
        (tmp_path / "pairs.csv").write_text(empty)
        with pytest.raises(CatalogueError, match="is empty; it needs the header"):
            load_catalogue(tmp_path)


def test_a_spreadsheet_s_pairs_csv_is_read_as_a_check_reads_it(tmp_path, catalogue_dir):
    """`catalogue import` of a season a check had accepted: `Name,Front,Back` "lacked" its
    columns, the empty rows a spreadsheet leaves (",,,") "had an empty field", and rows ending
    in a comma the header lacks were shifted a column (the name read as the front)."""
    shutil.copytree(catalogue_dir / "images", tmp_path / "images")
    (tmp_path / "pairs.csv").write_text(
        "Name,Front,BACK,Season\n"
        "a,images/dress-0001_front.png,images/dress-0001_back.png,SS25,\n"
        ",,,\n"
        "b,images/dress-0005_front.png,images/dress-0005_back.png,AW25,\n"
        ",,,,\n")
    with pytest.warns(pd.errors.ParserWarning, match="loss of data"):  # the trailing comma
        cat = load_catalogue(tmp_path)
    assert (cat.names, cat.fronts) == (["a", "b"], ["images/dress-0001_front.png",
                                                    "images/dress-0005_front.png"])
    assert cat.extra == {"Season": ["SS25", "AW25"]}


def test_a_rewritten_pairs_csv_keeps_the_byte_order_mark_excel_saved(tmp_path, catalogue_dir):
    """An edit rewrote a pairs.csv saved by Excel as "CSV UTF-8" without its byte-order mark:
    Excel then read the season `Été 26` as `Ã‰tÃ© 26`."""
    from worker.core.catalogue import write_catalogue_csv

    shutil.copytree(catalogue_dir / "images", tmp_path / "images")
    row = "a,images/dress-0001_front.png,images/dress-0001_back.png,Été 26\r\n"
    (tmp_path / "pairs.csv").write_bytes(("\ufeffname,front,back,season\r\n" + row).encode())
    cat = load_catalogue(tmp_path)
    write_catalogue_csv(tmp_path, cat.names, cat.fronts, cat.backs, cat.extra)
    assert (tmp_path / "pairs.csv").read_bytes() == ("\ufeffname,front,back,season\r\n"
                                                     + row).encode()
    (tmp_path / "pairs.csv").write_bytes(("name,front,back,season\r\n" + row).encode())
    write_catalogue_csv(tmp_path, cat.names, cat.fronts, cat.backs, cat.extra)
    assert (tmp_path / "pairs.csv").read_bytes().startswith(b"name,")  # none added either


def test_a_new_design_s_column_values_are_one_line_of_visible_text():
    """Any space (a pasted cell's U+00A0, a Japanese keyboard's U+3000), the joiners of
    Persian script and emoji, a soft hyphen, a Hebrew right-to-left mark and a flag's tags
    were refused as "not printable"; a lone surrogate (a Latin-1 argument read by the CLI: the
    rewrite of pairs.csv then failed with a traceback), a line break, control or override is
    refused, naming the design and the value."""
    from worker.core.catalogue import ColumnValueError, check_column_values

    england = "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in "gbeng") + "\U000e007f"
    fine = ["SS\u00a026", "2026\u3000秋冬", "می\u200cخواهم", "👩\u200d🎨", "Été",
            "Sommer\u00adkollektion", "\u05e7\u05d9\u05e5\u200f 26", england, "SS26\u200b"]
    check_column_values(["season"], [{"season": v} for v in fine], list(range(len(fine))))
    for bad in ("a\nb", "a\tb", "\udcc9t\udce9", "x\u202ey", "x\u2028y"):
        with pytest.raises(ColumnValueError, match="design 'd7': season takes one line of text"):
            check_column_values(["season"], [{"season": bad}], ["d7"])
    with pytest.raises(ColumnValueError, match="at most 200 characters, got 201"):
        check_column_values(["season"], [{"season": "x" * 201}])


def test_a_design_named_with_a_slash_can_be_searched_with_and_removed(web):
    """A hand-written pairs.csv may name "SS26/jkt-01"; the routes take it whole."""
    urls = web.application.url_map.bind("localhost")
    assert urls.match("/designs/SS26/jkt-01/search", method="POST") == (
        "pages.search_like", {"name": "SS26/jkt-01"})
    assert urls.match("/api/designs/SS26/jkt-01", method="DELETE") == (
        "designs.delete_design", {"name": "SS26/jkt-01"})


def fake_generation(database_dir, features_dir, catalogue, **manifest) -> None:
    """A real generation of the catalogue with random banks (what the web reads of it), its
    manifest with `manifest`'s entries besides."""
    rng = np.random.default_rng(0)
    n = len(catalogue)
    write_bank(features_dir, l2_normalise(rng.normal(size=(n, 8))),
               l2_normalise(rng.normal(size=(n, 8))),
               {"n_pairs": n, "dim": 8, "dtype": "float32", "descriptor": "flatten",
                "weights": {"id": "bsds500", "fingerprint": "abc"}, "created": CREATED,
                "catalogue_fingerprint": catalogue.fingerprint(), "names": catalogue.names,
                "fronts": catalogue.fronts, "backs": catalogue.backs, **manifest},
               catalogue_csv=catalogue_csv(catalogue.names, catalogue.fronts, catalogue.backs,
                                           catalogue.extra))


def test_an_edit_keeps_the_columns(tmp_path, catalogue_dir, catalogue):
    from worker.core.bank import load_generation
    from worker.core.settings import Settings
    from worker.indexing.edits import remove_design

    shutil.copytree(catalogue_dir, tmp_path / "db")
    settings = Settings(database_dir=tmp_path / "db", features_dir=tmp_path / "features")
    fake_generation(settings.database_dir, settings.features_dir, catalogue)
    remove_design(settings, catalogue.names[1])
    listed, _, _ = load_generation(settings.database_dir, settings.features_dir)
    assert listed.extra == {c: v[:1] + v[2:] for c, v in catalogue.extra.items()}
    assert load_catalogue(settings.database_dir).extra == listed.extra


# --- the web: checks, /catalogue, the front page ------------------------------------------

@pytest.fixture
def web(settings, redis, catalogue_dir, catalogue, tmp_path):
    from web import create_app

    fake_generation(catalogue_dir, settings.features_dir, catalogue)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    return app.test_client()


def test_unknown_filters_are_400_naming_them_and_nothing_is_queued(web, redis, settings):
    front, back = design_pair(1, N_PAIRS)
    cases = [("colour:red", "unknown_filter", "'colour'"), ("garment:gown", "unknown_filter",
             "'gown'"), ("garment", "invalid_filter", "column:value")]
    for field, code, named in cases:
        response = post_pair(web, front, back, filter=field)
        assert response.status_code == 400, field
        assert response.get_json()["error"] == code and named in response.get_json()["message"]
        page = web.post("/", data={"filter": field, "front": (io.BytesIO(front), "f.png")},
                        content_type="multipart/form-data")
        assert page.status_code == 400 and named in html.unescape(page.get_data(as_text=True))
    assert redis.llen(f"rq:queue:{settings.queue_name}") == 0
    assert not any(settings.upload_dir.iterdir())


def test_a_multi_select_of_many_values_is_accepted(web, redis, settings):
    """A multi-select sends a field per value chosen: 51 of them were refused (`at most 50
    filter fields`), on the form, the API and the catalogue's pages."""
    front, back = design_pair(1, N_PAIRS)
    chosen = [("filter", "season:SS25")] * 30 + [("filter", "season:AW25")] * 30
    from werkzeug.datastructures import MultiDict

    form = MultiDict([*chosen, ("front", (io.BytesIO(front), "f.png")),
                      ("back", (io.BytesIO(back), "b.png"))])
    response = web.post("/api/searches", data=form, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    body = web.get(response.get_json()["url"]).get_json()
    assert body["filters"] == {"season": ["AW25", "SS25"]}
    assert web.get("/catalogue?" + "&".join(f"{k}={v}" for k, v in chosen)).status_code == 200


def test_the_front_page_says_what_is_searched_and_offers_the_columns(web):
    html = web.get("/").get_data(as_text=True)
    assert f"Searching <strong>{N_PAIRS}</strong> catalogue" in html
    assert "<code>flatten</code>" in html and 'href="/catalogue"' in html
    assert f'<time datetime="{CREATED}">2 Jan 2025, 03:04 UTC</time>' in html  # not raw ISO
    assert 'name="filter" multiple' in html
    for value in ("garment:dress", "garment:trousers", "season:SS25", "season:AW25"):
        assert f'value="{value}"' in html
    check_form = html[html.index('id="check-collection"'):]  # a check filters as a search does
    assert '<select id="check-filter-garment" name="filter" multiple' in check_form
    assert html.count('id="filter-garment"') == 1  # one id for each of the two forms


def test_the_catalogue_pages_and_filters(web, catalogue):
    first = web.get("/api/catalogue?per_page=10").get_json()
    assert (first["total"], first["pages"], first["page"]) == (N_PAIRS, 3, 1)
    assert [d["name"] for d in first["designs"]] == catalogue.names[:10]
    assert first["columns"]["season"] == ["AW25", "SS25", "SS26"]
    third = web.get("/api/catalogue?per_page=10&page=3").get_json()
    assert [d["name"] for d in third["designs"]] == catalogue.names[20:]
    assert web.get("/api/catalogue?per_page=10&page=4").get_json()["designs"] == []
    want = sorted(rows_where(catalogue, garment={"jacket", "trousers"}, season={"SS26"}))
    body = web.get("/api/catalogue?filter=garment:jacket,trousers&filter=season:SS26").get_json()
    assert [d["name"] for d in body["designs"]] == [catalogue.names[i] for i in want]
    assert body["filters"] == {"garment": ["jacket", "trousers"], "season": ["SS26"]}
    assert all(d["columns"]["season"] == "SS26" for d in body["designs"])
    for query, code in (("filter=hue:red", "unknown_filter"), ("page=0", "invalid_page"),
                        ("per_page=201", "invalid_per_page"), ("filter=x", "invalid_filter"),
                        ("page=%C2%B2", "invalid_page"), ("per_page=%D9%A3", "invalid_per_page"),
                        ("page=" + "9" * 5000, "invalid_page")):  # past int()'s limit: a 500
        response = web.get(f"/api/catalogue?{query}")
        assert response.status_code == 400 and response.get_json()["error"] == code


def test_the_catalogue_page_links_pages_thumbnails_and_searches(web, catalogue, settings):
    html = web.get("/catalogue?per_page=5&filter=garment:dress").get_data(as_text=True)
    assert "pick none to list them all" in html  # a list to browse, not a search
    dresses = [catalogue.names[i] for i in sorted(rows_where(catalogue, garment={"dress"}))]
    assert f"{len(dresses)} of {N_PAIRS} designs" in html and "garment is dress" in html
    assert all(f'data-name="{n}"' in html for n in dresses[:5])
    assert f'data-name="{dresses[5]}"' not in html
    assert "page=2" in html and "filter=garment:dress" in html  # the next page keeps the filter
    # the design by a form field: a name such as ".." in a path is rewritten by browsers
    assert (f'action="/designs/search"> <input type="hidden" name="name" '
            f'value="{dresses[0]}">') in " ".join(html.split())
    thumb = web.get(f"/catalogue/thumbs/{catalogue.fronts[0]}")
    assert thumb.status_code == 302 and thumb.location.endswith(f"/database/{catalogue.fronts[0]}")
    for nowhere in ("%2e%2e/%2e%2e/README.md", "images/none.png", "pairs.csv"):
        assert web.get(f"/catalogue/thumbs/{nowhere}").status_code == 404  # not redirected
    from worker.core.catalogue import thumbnail_file

    made = thumbnail_file(settings.features_dir, catalogue.fronts[0])
    made.parent.mkdir(parents=True)
    made.write_bytes(b"\xff\xd8jpeg")
    served = web.get(f"/catalogue/thumbs/{catalogue.fronts[0]}")
    assert served.status_code == 200 and served.data == b"\xff\xd8jpeg"
    removed = thumbnail_file(settings.features_dir, "images/0123456789abcdef.png")
    removed.write_bytes(b"\xff\xd8jpeg")  # a removed design's drawing is gone, its thumbnail not
    assert web.get("/catalogue/thumbs/images/0123456789abcdef.png").status_code == 404


def test_a_catalogue_page_past_the_last_says_so_and_links_the_last(web):
    html = web.get("/catalogue?per_page=10&page=9").get_data(as_text=True)
    assert "page 9 is past the last, 3" in html and "page 9 of" not in html
    assert "No design on this page." in html and "page=3" in html and "page=8" not in html


def test_a_catalogue_page_whose_filter_is_gone_shows_the_rest_and_says_so(web):
    """A bookmarked page, or one gone back to, after the last SS24 design was removed: an
    error page whose only link was "Start a new search". The API still refuses (400)."""
    page = html.unescape(web.get("/catalogue?filter=garment:gown&filter=garment:dress"
                                 "&filter=colour:red").get_data(as_text=True))
    assert "No design has colour red or garment gown any more, so those filters are left out" \
        in " ".join(page.split())
    assert "garment is dress" in page and f"of {N_PAIRS} designs" in page
    assert web.get("/catalogue?filter=garment:dress").get_data(as_text=True).count("left out") == 0
    assert web.get("/api/catalogue?filter=garment:gown").status_code == 400


def test_the_header_links_the_catalogue_and_the_duplicates_from_every_page(web):
    for url in ("/", "/catalogue", "/duplicates"):
        html = web.get(url).get_data(as_text=True)
        assert '<nav><a href="/catalogue">Catalogue</a>' in html and 'href="/duplicates"' in html


def test_times_read_as_a_person_reads_them():
    from web.pages import when

    assert when("2026-12-03T05:12:33+00:00") == "3 Dec 2026, 05:12 UTC"
    assert when("2026-12-03T05:12:33+01:00") == "3 Dec 2026, 05:12 +0100"
    assert when("2026-12-03T05:12:33") == "3 Dec 2026, 05:12"
    assert when("last Tuesday") == "last Tuesday" and when(None) == ""


def test_no_index_no_catalogue(client):
    assert client.get("/api/catalogue").status_code == 503
    assert "No catalogue index yet" in client.get("/").get_data(as_text=True)



@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_catalogue_api_conforms_to_its_openapi_document(web, mode):
    """Fuzzed against a real generation (30 examples each way): answers match the document;
    invalid `page`/`per_page` are refused. (Valid-by-schema filters may still name no column:
    a documented 400, so positive data acceptance is not asserted here.)"""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from schemathesis import GenerationMode

    from tests.test_ops import CONFORMANCE
    from tests.test_ops import positive_data_acceptance as accepted

    schema = schemathesis.openapi.from_wsgi("/openapi.json", web.application)
    checks = [check for check in CONFORMANCE if check is not accepted]
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE

    @given(case=schema["/api/catalogue"]["GET"].as_strategy(generation_mode=generation))
    @hypothesis_settings(max_examples=30, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(checks=checks)

    fuzz()


def test_the_image_routes_answer_as_their_openapi_document_says(web, catalogue, settings):
    """A hit's `front_url` and a listed design's thumbnail URL: the drawing (PNG), the
    thumbnail (JPEG), the redirect before a thumbnail exists, the 404 page."""
    import schemathesis

    from tests.test_ops import CONFORMANCE
    from tests.test_ops import positive_data_acceptance as accepted
    from worker.core.catalogue import thumbnail_file

    schema = schemathesis.openapi.from_wsgi("/openapi.json", web.application)
    checks = [check for check in CONFORMANCE if check is not accepted]
    drawing, thumbnailed = catalogue.fronts[0], catalogue.backs[0]
    made = thumbnail_file(settings.features_dir, thumbnailed)
    made.parent.mkdir(parents=True, exist_ok=True)
    made.write_bytes(b"\xff\xd8jpeg")
    for route, path, status in (("/database/{path}", drawing, 200),
                                ("/database/{path}", "images/none.png", 404),
                                ("/catalogue/thumbs/{path}", thumbnailed, 200),
                                ("/catalogue/thumbs/{path}", drawing, 302),
                                ("/catalogue/thumbs/{path}", "pairs.csv", 404)):
        case = schema[route]["GET"].Case(path_parameters={"path": path})
        assert case.call_and_validate(checks=checks).status_code == status, (route, path)


# --- filters that no design passes together -------------------------------------------------

def without_trousers_in(catalogue, season: str):
    """The catalogue with every pair of trousers moved out of `season` (each value still
    somewhere in its column, but no design both)."""
    from dataclasses import replace

    others = sorted(set(catalogue.extra["season"]) - {season})
    seasons = [others[0] if garment == "trousers" and s == season else s
               for garment, s in zip(catalogue.extra["garment"], catalogue.extra["season"],
                                     strict=True)]
    return replace(catalogue, extra={**catalogue.extra, "season": seasons})


def test_filters_that_no_design_passes_together_are_refused(catalogue):
    from worker.core.filters import NothingPasses, check_some_pass

    lacking = without_trousers_in(catalogue, "SS26")
    none_pass = {"garment": ["trousers"], "season": ["SS26"]}
    assert not allowed_rows(none_pass, lacking).any()  # the mask itself: each value is known
    with pytest.raises(NothingPasses, match=r"no catalogue design passes the filters \(garment "
                                            r"is trousers, and season is SS26\)"):
        check_some_pass(none_pass, lacking)
    check_some_pass({"garment": ["trousers", "dress"], "season": ["SS26"]}, lacking)
    check_some_pass({}, lacking)
    with pytest.raises(FilterError, match="no design has garment 'gown'"):
        check_some_pass({"garment": ["gown"]}, lacking)


def test_a_search_or_check_against_filters_no_design_passes_is_400(settings, redis, catalogue_dir,
                                                                   catalogue):
    from tests.zips import make_zip
    from web import create_app

    fake_generation(catalogue_dir, settings.features_dir, without_trousers_in(catalogue, "SS26"))
    web = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    front, back = design_pair(1, N_PAIRS)

    def post(url, files, fields):
        return web.post(url, data={"filter": fields, **{k: (io.BytesIO(v), f"{k}.bin")
                                                        for k, v in files.items()}},
                        content_type="multipart/form-data")

    fields = ["garment:trousers", "season:SS26"]
    collection = make_zip({"f.png": front, "b.png": back}, [("new", "f.png", "b.png")])
    for response in (post("/api/searches", {"front": front, "back": back}, fields),
                     post("/api/checks", {"collection": collection}, fields)):
        assert response.status_code == 400, response.get_json()
        body = response.get_json()
        assert body["error"] == "no_design_passes" and "garment is trousers" in body["message"]
    assert redis.llen(f"rq:queue:{settings.queue_name}") == 0
    assert not any(settings.upload_dir.iterdir())
    # a combination some design passes is searched
    searched = post("/api/searches", {"front": front, "back": back},
                    ["garment:trousers", "season:SS25"])
    assert searched.status_code == 202, searched.get_json()
