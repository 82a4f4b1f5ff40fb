"""Coarse-then-exact search (worker.pipeline.ann): the same hits as brute force; its setting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from worker.core import generations
from worker.core.bank import COARSE_INDEX, BankError, FeatureBank, load_bank, write_bank
from worker.core.catalogue import load_catalogue
from worker.core.settings import InvalidSetting, Settings
from worker.core.whitening import l2_normalise
from worker.pipeline.ann import (
    CODES,
    CoarseIndex,
    IndexedBank,
    _stored,
    stored_index,
    with_coarse_index,
)
from worker.pipeline.ranking import top_k
from worker.pipeline.sides import searched_alone
from worker.service.engine import Engine

N, DIM = 3000, 32


@pytest.fixture(scope="module")
def banks() -> tuple[FeatureBank, FeatureBank]:
    """(brute force bank, the same bank with a coarse index), 3000 random pairs; the index
    proposes 200 candidates or 10 a hit (the service's minimum is more than such a bank)."""
    rng = np.random.default_rng(3)
    bank = FeatureBank(l2_normalise(rng.normal(size=(N, DIM))),
                       l2_normalise(rng.normal(size=(N, DIM))), manifest={})
    indexed = with_coarse_index(bank, 0, min_candidates=200)
    assert isinstance(indexed, IndexedBank) and len(indexed.coarse) == N
    return bank, indexed


def queries(bank: FeatureBank, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy copy of one pair (a near-duplicate) with its sides possibly exchanged."""
    rng = np.random.default_rng(seed)
    row = int(rng.integers(N))
    noisy = [l2_normalise(side[row][None] + rng.normal(scale=0.1, size=(1, DIM)))[0]
             for side in (bank.front, bank.back)]
    return (noisy[1], noisy[0]) if seed % 2 else (noisy[0], noisy[1])


def assert_same_hits(exact, approx):
    assert [(h.rank, h.index, h.swapped) for h in approx] == \
        [(h.rank, h.index, h.swapped) for h in exact]
    for a, e in zip(approx, exact, strict=True):
        assert a.score == pytest.approx(e.score, abs=1e-6)
        for got, want in ((a.front_score, e.front_score), (a.back_score, e.back_score)):
            assert (got is None) == (want is None)
            if want is not None:
                assert got == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("sides", ["both", "front", "back"])
@pytest.mark.parametrize("sides_unknown", [False, True])
@pytest.mark.parametrize("front_weight", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_coarse_then_exact_returns_the_brute_force_hits(banks, sides, sides_unknown,
                                                       front_weight, seed, monkeypatch):
    bank, indexed = banks
    calls = []
    candidates = indexed.coarse.candidates
    monkeypatch.setattr(indexed.coarse, "candidates",
                        lambda *a, **kw: calls.append(a) or candidates(*a, **kw))
    q_front, q_back = queries(bank, seed)
    q_front = None if sides == "back" else q_front
    q_back = None if sides == "front" else q_back
    rows = indexed.coarse.candidates(q_front, q_back, 20, front_weight, sides_unknown)
    assert rows is not None and len(rows) < N  # the coarse path really ran
    for k in (1, 20, 50):
        exact = top_k(bank, q_front, q_back, k, front_weight, sides_unknown)
        assert_same_hits(exact, top_k(indexed, q_front, q_back, k, front_weight, sides_unknown))
    assert len(calls) == 4, "top_k asked the coarse index for its candidates (once per k)"


def test_random_queries_and_k_beyond_the_bank(banks):
    bank, indexed = banks
    rng = np.random.default_rng(11)
    q_front, q_back = l2_normalise(rng.normal(size=(2, DIM)))
    for k in (20, 100, N + 5):
        exact = top_k(bank, q_front, q_back, k, 0.5, True)
        assert len(exact) == min(k, N)
        assert_same_hits(exact, top_k(indexed, q_front, q_back, k, 0.5, True))


def test_small_bank_k_larger_than_the_bank():
    rng = np.random.default_rng(5)
    bank = FeatureBank(l2_normalise(rng.normal(size=(7, 8))), l2_normalise(rng.normal(size=(7, 8))),
                       manifest={})
    indexed = with_coarse_index(bank, 0)
    q_front, q_back = l2_normalise(rng.normal(size=(2, 8)))
    for sides_unknown in (False, True):
        exact = top_k(bank, q_front, q_back, 20, 0.5, sides_unknown)
        assert len(exact) == 7
        assert_same_hits(exact, top_k(indexed, q_front, q_back, 20, 0.5, sides_unknown))


def test_threshold_decides_which_banks_get_an_index(banks):
    bank, _ = banks
    assert with_coarse_index(bank, N + 1) is bank
    assert isinstance(with_coarse_index(bank, N), IndexedBank)


def test_all_zero_query_falls_back_to_brute_force(banks):
    bank, indexed = banks
    zero = np.zeros(DIM, dtype=np.float32)
    assert indexed.coarse.candidates(zero, zero, 20, 0.5, True) is None
    assert_same_hits(top_k(bank, zero, None, 20, 0.5), top_k(indexed, zero, None, 20, 0.5))


def test_query_without_sides_is_refused(banks):
    with pytest.raises(ValueError, match="front, a back"):
        top_k(banks[1], None, None, 5, 0.5)


def test_search_ann_min_pairs_setting():
    assert Settings.from_env({}).search_ann_min_pairs == 100_000
    assert Settings.from_env({"SEARCH_ANN_MIN_PAIRS": "0"}).search_ann_min_pairs == 0
    assert Settings.from_env({"SEARCH_ANN_MIN_PAIRS": "250000"}).search_ann_min_pairs == 250_000
    for bad in ("many", "1e5", "-1"):
        with pytest.raises(InvalidSetting, match="SEARCH_ANN_MIN_PAIRS"):
            Settings.from_env({"SEARCH_ANN_MIN_PAIRS": bad})


class FakeExtractor:
    weights_fingerprint = "abc"
    descriptor = "flatten"
    precision = "float32"
    trim = False  # the "flatten" descriptor's preprocessing


def write_catalogue_bank(folder, catalogue_dir, **manifest) -> None:
    """Random banks for the catalogue at `catalogue_dir`, as FakeExtractor's model would."""
    catalogue = load_catalogue(catalogue_dir)
    rng = np.random.default_rng(0)
    n = len(catalogue)
    write_bank(folder, l2_normalise(rng.normal(size=(n, 8))), l2_normalise(rng.normal(size=(n, 8))),
               {"n_pairs": n, "dim": 8, "dtype": "float32", "descriptor": "flatten",
                "weights": {"id": "bsds500", "fingerprint": "abc"},
                "catalogue_fingerprint": catalogue.fingerprint(), **manifest})


@pytest.mark.parametrize("min_pairs, indexed", [(0, True), (24, True), (25, False)])
def test_engine_attaches_the_index_from_the_setting(tmp_path, catalogue_dir, min_pairs, indexed):
    write_catalogue_bank(tmp_path, catalogue_dir)
    settings = Settings(database_dir=catalogue_dir, features_dir=tmp_path,
                        search_ann_min_pairs=min_pairs)
    import faiss  # noqa: F401 - loaded, as a large catalogue loads it, then limited again

    threadpool_limits(limits=2, user_api="blas")
    bank = Engine(settings, FakeExtractor()).snapshot.bank
    assert isinstance(bank, IndexedBank) is indexed
    # faiss brings its own BLAS: limited as numpy's is, even when loaded by this index
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert len(blas) >= 2 and any("faiss" in pool["filepath"] for pool in blas)  # numpy's, faiss's
    assert all(pool["num_threads"] == 1 for pool in blas)


def test_engine_compares_the_bank_record_with_how_its_extractor_prepares_drawings(
        tmp_path, catalogue_dir):
    """An untrimmed descriptor's bank recorded as untrimmed is served; one recorded as
    trimmed is refused: the record is compared with the extractor's own preparation."""
    from worker.pipeline.preprocess import preprocess_params

    for trim, served in ((False, True), (True, False)):
        folder = tmp_path / f"trim-{trim}"
        write_catalogue_bank(folder, catalogue_dir, preprocess=preprocess_params(trim))
        settings = Settings(database_dir=catalogue_dir, features_dir=folder)
        if served:
            Engine(settings, FakeExtractor())
        else:
            with pytest.raises(BankError, match="prepared or measured another way"):
                Engine(settings, FakeExtractor())


class CountingIndex:
    """A faiss index that counts its scans."""

    def __init__(self, index):
        self.index, self.scans = index, 0

    def __getattr__(self, name):
        return getattr(self.index, name)

    def search(self, *args, **kwargs):
        self.scans += 1
        return self.index.search(*args, **kwargs)


@pytest.mark.parametrize("sides_next", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("sides_unknown", [False, True])
def test_a_pair_search_scans_for_the_sides_searched_alone_next(banks, sides_unknown, sides_next):
    """A two-sided search's scan also finds the candidates of the sides it is told are
    searched alone next (`sides_next`: what `sides.side_copies` asks), with the hits brute
    force gives; any other side, one-side search or pair scans again."""
    bank, indexed = banks
    coarse = with_coarse_index(bank, 0, min_candidates=200).coarse
    counting = coarse.index = CountingIndex(coarse.index)
    searched = IndexedBank(bank.front, bank.back, bank.manifest, coarse=coarse)
    q_front, q_back = queries(bank, 4)
    assert_same_hits(top_k(bank, q_front, q_back, 40, 0.5, sides_unknown),
                     top_k(searched, q_front, q_back, 40, 0.5, sides_unknown,
                           sides_next=sides_next))
    expected = 1
    assert counting.scans == expected
    other, third = queries(bank, 6)[0], queries(bank, 8)[1]
    sides = sorted(zip(((q_front, None), (None, q_back)), sides_next, strict=True),
                   key=lambda side: not side[1])  # those scanned ahead first: a scan forgets them
    for alone, scanned_ahead in [*sides, ((other, q_back), False), ((None, third), False)]:
        k = 40 if all(q is not None for q in alone) else 2
        assert_same_hits(top_k(bank, *alone, k, 0.5, sides_unknown),
                         top_k(searched, *alone, k, 0.5, sides_unknown))
        expected += not scanned_ahead
        assert counting.scans == expected, alone


def test_the_sides_searched_alone_are_those_side_copies_judges():
    """What a search scans ahead for: both sides of a weighted pair with verdicts; none for
    one side, a side weighted 0, or no verdicts; never a side matched by its outline."""
    q, anything = np.ones(4), {"copy": 0.9}
    assert searched_alone((q, q), 0.5, anything, (False, False)) == (True, True)
    assert searched_alone((q, q), 0.5, anything, (True, False)) == (False, True)
    assert searched_alone((q, q), 0.5, None, (False, False)) == (False, False)
    assert searched_alone((q, None), 0.5, anything, (False, False)) == (False, False)
    for weight in (0.0, 1.0):
        assert searched_alone((q, q), weight, anything, (False, False)) == (False, False)


def write_with_stored_index(folder, catalogue_dir, min_pairs: int, **manifest) -> None:
    """write_catalogue_bank's banks, with the coarse index a build stores at `min_pairs`."""
    catalogue = load_catalogue(catalogue_dir)
    rng = np.random.default_rng(0)
    n = len(catalogue)
    front, back = (l2_normalise(rng.normal(size=(n, 8))).astype(np.float32) for _ in range(2))
    files, entry = stored_index(front, back, min_pairs)
    write_bank(folder, front, back,
               {"n_pairs": n, "dim": 8, "dtype": "float32", "descriptor": "flatten",
                "weights": {"id": "bsds500", "fingerprint": "abc"},
                "catalogue_fingerprint": catalogue.fingerprint(), "coarse_index": entry,
                **manifest}, extra_files=files)


@pytest.mark.parametrize("stored_at, served_at, loaded", [
    (0, 0, True),  # stored and wanted: loaded, not built
    (0, 25, None),  # stored, but this worker searches such a bank exactly
    (25, 0, False),  # none stored (the index command's threshold): built
])
def test_a_worker_loads_the_coarse_index_its_generation_stores(
        tmp_path, catalogue_dir, monkeypatch, stored_at, served_at, loaded):
    write_with_stored_index(tmp_path, catalogue_dir, stored_at)
    assert ((generations.current_dir(tmp_path) / COARSE_INDEX).is_file()) is (stored_at == 0)
    builds = []
    build = CoarseIndex.build
    monkeypatch.setattr(CoarseIndex, "build", classmethod(
        lambda cls, *a, **kw: builds.append(a) or build.__func__(cls, *a, **kw)))
    settings = Settings(database_dir=catalogue_dir, features_dir=tmp_path,
                        search_ann_min_pairs=served_at)
    bank = Engine(settings, FakeExtractor()).snapshot.bank
    assert isinstance(bank, IndexedBank) is (loaded is not None)
    if loaded is not None:
        assert (builds == []) is loaded
        assert len(bank.coarse) == len(bank) and bank.stored_coarse is None  # bytes not kept
        q = bank.front[3]
        search = with_coarse_index(bank, 0, min_candidates=5, per_k=1)  # 5 of the 24 rows
        assert_same_hits(top_k(bank, q, None, 3, 0.5), top_k(search, q, None, 3, 0.5))


def test_a_stored_index_of_other_codes_or_rows_or_damaged_is_built_again(tmp_path,
                                                                          catalogue_dir):
    """The generation loads whatever its coarse index file holds (it can always be built
    again); the index is loaded only when it is the file the manifest lists, of these codes
    and rows."""
    write_with_stored_index(tmp_path, catalogue_dir, 0)
    bank = load_bank(tmp_path)
    assert bank.stored_coarse is not None and _stored(bank) is not None
    for entry in ({"codes": "int8-flat", "pairs": len(bank)}, {"codes": CODES, "pairs": 3}):
        other = dataclasses.replace(bank, manifest={**bank.manifest, "coarse_index": entry})
        assert _stored(other) is None
    path = generations.current_dir(tmp_path) / COARSE_INDEX
    whole = path.read_bytes()
    for damage in (whole[:100], whole[:-1] + bytes([whole[-1] ^ 1]), None):
        if damage is None:
            path.unlink()
        else:
            path.write_bytes(damage)
        bank = load_bank(tmp_path)  # the banks are served all the same
        assert _stored(bank) is None
        assert len(with_coarse_index(bank, 0).coarse) == len(bank)  # built instead
