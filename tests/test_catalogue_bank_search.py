"""Catalogue reading, bank files and scoring: the pure-numpy parts of the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worker.core.bank import BankError, FeatureBank, check_bank_matches, load_bank, write_bank
from worker.core.catalogue import CatalogueError, load_catalogue
from worker.core.generations import current_dir
from worker.core.whitening import l2_normalise
from worker.pipeline.preprocess import preprocess_params
from worker.pipeline.ranking import top_k


def write_csv(root, text):
    (root / "pairs.csv").write_text(text)
    return root


def test_catalogue_reads_rows_in_order(catalogue_dir):
    cat = load_catalogue(catalogue_dir)
    assert len(cat) == 24 and cat.names[0] == "tshirt-0000"
    assert cat.image_path(cat.fronts[0]).is_file()


@pytest.mark.parametrize("text, words", [
    ("name,front\na,x.png\n", "lacks column"),
    ("name,front,back\na,x.png,y.png\na,z.png,w.png\n", "duplicate"),
    ("name,front,back\na,,y.png\n", "empty field"),
    ("name,front,back\na,../../etc/passwd,y.png\n", "outside"),
])
def test_catalogue_errors_name_the_problem(tmp_path, text, words):
    with pytest.raises(CatalogueError, match=words):
        load_catalogue(write_csv(tmp_path, text))


def test_missing_catalogue_says_what_to_do(tmp_path):
    with pytest.raises(CatalogueError, match="worker.cli.sample"):
        load_catalogue(tmp_path)


def random_bank(n=10, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    return l2_normalise(rng.normal(size=(n, dim))), l2_normalise(rng.normal(size=(n, dim)))


def manifest(n=10, dim=8):
    return {"n_pairs": n, "dim": dim, "dtype": "float32", "descriptor": "flatten",
            "weights": {"id": "bsds500", "fingerprint": "abc"}, "catalogue_fingerprint": "cat"}


def test_bank_round_trip_is_memory_mapped(tmp_path):
    front, back = random_bank()
    write_bank(tmp_path, front, back, manifest())
    bank = load_bank(tmp_path)
    assert isinstance(bank.front, np.memmap)
    np.testing.assert_array_equal(bank.front, front)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "generations"]
    assert sorted(p.name for p in current_dir(tmp_path).iterdir()) == ["back.npy", "front.npy",
                                                                      "manifest.json"]


def test_bank_damage_is_refused(tmp_path):
    front, back = random_bank()
    write_bank(tmp_path, front, back, manifest())
    path = current_dir(tmp_path) / "back.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BankError, match="make index"):
        load_bank(tmp_path)


def test_nan_rows_and_wrong_dims_are_refused(tmp_path):
    front, back = random_bank()
    front[3] = np.nan
    write_bank(tmp_path / "nan", front, back, manifest())
    with pytest.raises(BankError, match="NaN"):
        load_bank(tmp_path / "nan")
    write_bank(tmp_path / "dim", *random_bank(), {**manifest(), "dim": 9})
    with pytest.raises(BankError, match="manifest says"):
        load_bank(tmp_path / "dim")


def test_missing_banks_say_what_to_do(tmp_path):
    with pytest.raises(BankError, match="make index"):
        load_bank(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BankError, match="corrupt"):
        load_bank(tmp_path)


def test_bank_must_match_catalogue_weights_and_descriptor():
    bank = FeatureBank(*random_bank(), manifest())
    prepared = preprocess_params(True)
    check_bank_matches(bank, "cat", 10, "abc", "flatten", "float32", prepared)
    with pytest.raises(BankError, match="pairs.csv"):
        check_bank_matches(bank, "other", 10, "abc", "flatten", "float32", prepared)
    with pytest.raises(BankError, match="DESCRIPTOR"):
        check_bank_matches(bank, "cat", 10, "abc", "rmac", "float32", prepared)
    with pytest.raises(BankError, match="VGG16_WEIGHTS=bsds500"):
        check_bank_matches(bank, "cat", 10, "zzz", "flatten", "float32", prepared)


def test_bank_of_drawings_prepared_another_way_is_refused(tmp_path):
    """A query measured as this version measures it is not compared with rows measured
    otherwise (an upgrade changed the trim or an appearance column's measure)."""
    prepared = preprocess_params(True)
    write_bank(tmp_path / "now", *random_bank(), {**manifest(), "preprocess": prepared})
    check_bank_matches(load_bank(tmp_path / "now"), "cat", 10, "abc", "flatten", "float32",
                       prepared)  # the record read back from JSON equals the one made now
    before = {**prepared, "appearance": {**prepared["appearance"],
                                         "outline": "ink darker than 235 in some channel"}}
    for other in ({k: v for k, v in prepared.items() if k != "appearance"}, before,
                  preprocess_params(False)):
        bank = FeatureBank(*random_bank(), {**manifest(), "preprocess": other})
        with pytest.raises(BankError, match="prepared or measured another way.*make index"):
            check_bank_matches(bank, "cat", 10, "abc", "flatten", "float32", prepared)
    # an index from before the record was kept has none: served as it is
    check_bank_matches(FeatureBank(*random_bank(), manifest()), "cat", 10, "abc", "flatten",
                       "float32", prepared)


def test_rewrite_swaps_whole_index(tmp_path):
    write_bank(tmp_path, *random_bank(seed=1), manifest())
    write_bank(tmp_path, *random_bank(n=12, seed=2), manifest(n=12))
    assert len(load_bank(tmp_path)) == 12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp files left"
    assert json.loads((current_dir(tmp_path) / "manifest.json").read_text())["n_pairs"] == 12
    assert len(list((tmp_path / "generations").iterdir())) == 2  # the current and the previous


def test_top_k_orders_by_weighted_score():
    front, back = random_bank(n=50, dim=16)
    bank = FeatureBank(front, back, {})
    hits = top_k(bank, front[7], back[7], k=5, front_weight=0.5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0].index == 7 and hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    overshoot = FeatureBank(front * np.float32(1.0000003), back, {})  # rounding, exaggerated
    best = top_k(overshoot, front[7], back[7], k=1, front_weight=1.0)[0]
    assert best.score == best.front_score == 1.0  # shown within [-1, 1], never 1.0000001
    expected = 0.5 * front @ front[7] + 0.5 * back @ back[7]
    np.testing.assert_allclose([h.score for h in hits], np.sort(expected)[::-1][:5], rtol=1e-5)


def test_front_weight_one_ignores_the_back():
    front, back = random_bank(n=30, dim=16)
    bank = FeatureBank(front, back, {})
    hits = top_k(bank, front[3], -back[3], k=1, front_weight=1.0)
    assert hits[0].index == 3 and hits[0].back_score == pytest.approx(-1.0, abs=1e-6)


def test_k_larger_than_catalogue_returns_everything():
    bank = FeatureBank(*random_bank(n=4), {})
    assert len(top_k(bank, bank.front[0], bank.back[0], k=20, front_weight=0.5)) == 4


def test_one_sided_query_scores_that_side():
    front, back = random_bank(n=20, dim=16)
    bank = FeatureBank(front, back, {})
    hits = top_k(bank, None, back[4], k=3, front_weight=0.5)
    assert hits[0].index == 4 and hits[0].front_score is None
    assert hits[0].score == pytest.approx(hits[0].back_score)
    with pytest.raises(ValueError):
        top_k(bank, None, None, k=3, front_weight=0.5)


def test_sides_unknown_takes_the_better_assignment():
    front, back = random_bank(n=20, dim=16)
    bank = FeatureBank(front, back, {})
    straight = top_k(bank, back[9], front[9], k=1, front_weight=0.5)[0]
    either = top_k(bank, back[9], front[9], k=1, front_weight=0.5, sides_unknown=True)[0]
    assert either.index == 9 and either.swapped and either.score == pytest.approx(1.0, abs=1e-6)
    assert straight.score < either.score
    # a single drawing filed as another design's back still matches
    single = top_k(bank, back[2], None, k=1, front_weight=0.5, sides_unknown=True)[0]
    assert single.index == 2 and single.swapped and single.score == pytest.approx(1.0, abs=1e-6)


def test_cached_manifest_follows_a_rewritten_index(tmp_path):
    from worker.core.readcache import read_manifest_cached

    write_bank(tmp_path, *random_bank(), manifest())
    first = read_manifest_cached(tmp_path)
    assert first["n_pairs"] == 10 and read_manifest_cached(tmp_path) is first  # not re-parsed
    write_bank(tmp_path, *random_bank(n=12), manifest(n=12))
    assert read_manifest_cached(tmp_path)["n_pairs"] == 12


def test_a_flat_features_dir_from_older_builds_loads_and_is_replaced_by_a_generation(tmp_path):
    import shutil

    write_bank(tmp_path, *random_bank(), manifest())
    for path in current_dir(tmp_path).iterdir():  # the layout before generations
        shutil.move(path, tmp_path / path.name)
    shutil.rmtree(tmp_path / "generations")
    (tmp_path / "CURRENT").unlink()
    (tmp_path / ".front.1234abcd.npy").write_bytes(b"left by a killed writer")
    assert len(load_bank(tmp_path)) == 10
    write_bank(tmp_path, *random_bank(n=12), manifest(n=12))
    assert len(load_bank(tmp_path)) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "generations"]
