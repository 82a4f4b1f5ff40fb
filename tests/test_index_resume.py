"""Resumable and incremental builds: chunks keyed by their images' content and the model,
kept in FEATURES_DIR/chunks; a build extracts only what the cache lacks, and its banks equal
a full build's. A worker takes chunks only after searches, and refuses another model's."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from rq import Queue
from rq.job import JobStatus

from tests.images import variant
from worker.core import generations
from worker.core.bank import load_bank
from worker.core.catalogue import load_catalogue, write_catalogue_csv
from worker.core.queueing import CHUNK_FUNC, JOB_FUNC, index_queue_name
from worker.core.settings import Settings
from worker.indexing.build import build_index
from worker.indexing.chunks import ChunkCache, hash_images, model_fingerprint
from worker.indexing.copies import SUFFIX

pytestmark = pytest.mark.slow
CHUNK_PAIRS = 8  # 16 images a chunk: the 24-pair catalogue's 46 images make 3 chunks


class Crash(Exception):
    """The build 'dies' here (Ctrl-C, a crash, the machine going down)."""


def assert_same_banks(features_a, features_b) -> None:
    a, b = load_bank(features_a), load_bank(features_b)
    assert a.manifest["names"] == b.manifest["names"]
    for side in ("front", "back"):
        np.testing.assert_allclose(getattr(a, side), getattr(b, side), atol=2e-5)
    np.testing.assert_allclose(a.whitening.projection, b.whitening.projection, rtol=1e-3, atol=1e-3)


def distinct_images(database_dir) -> int:
    cat = load_catalogue(database_dir)
    return len(set(cat.fronts) | set(cat.backs))


def test_an_interrupted_build_resumes_from_its_finished_chunks(catalogue_dir, features_dir,
                                                               extractor, tmp_path, monkeypatch):
    settings = Settings(database_dir=catalogue_dir, features_dir=tmp_path / "features",
                        vgg16_weights="bsds500", index_chunk_pairs=CHUNK_PAIRS)
    written: list[str] = []

    def die_after_the_first_chunk(what: str) -> None:
        if what.startswith("written chunk"):
            written.append(what)
            raise Crash(what)

    monkeypatch.setattr(generations, "checkpoint", die_after_the_first_chunk)
    with pytest.raises(Crash):
        build_index(settings, extractor, progress=False)
    monkeypatch.setattr(generations, "checkpoint", lambda what: None)
    assert len(written) == 1 and not (settings.features_dir / "CURRENT").exists()
    assert len(list(settings.features_dir.glob("chunks/*/*.npz"))) == 1
    manifest = build_index(settings, extractor, progress=False)
    total = distinct_images(catalogue_dir)
    # the first chunk (16 images) is not extracted again
    assert manifest["images"]["extracted"] == total - 2 * CHUNK_PAIRS
    assert manifest["images"]["reused"] == 2 * CHUNK_PAIRS
    assert_same_banks(settings.features_dir, features_dir)


def test_after_a_one_row_change_only_that_rows_images_are_extracted(catalogue_dir, features_dir,
                                                                    extractor, tmp_path,
                                                                    monkeypatch):
    from worker.indexing import sketches

    def decoded(*args):
        raise AssertionError("every image's sketch flag comes from its chunk")

    monkeypatch.setattr(sketches, "read_sketches", decoded)
    db = tmp_path / "db"
    shutil.copytree(catalogue_dir, db)
    settings = Settings(database_dir=db, features_dir=tmp_path / "features",
                        vgg16_weights="bsds500", index_chunk_pairs=CHUNK_PAIRS)
    shutil.copytree(features_dir, settings.features_dir)  # the full build, with its chunk cache
    cat = load_catalogue(db)
    row = 3  # a design of its own: no other row uses its images
    fronts, backs = list(cat.fronts), list(cat.backs)
    for side, column in (("front", fronts), ("back", backs)):
        data = variant((db / column[row]).read_bytes(), 7)
        column[row] = f"images/changed_{side}.png"
        (db / column[row]).write_bytes(data)
    write_catalogue_csv(db, cat.names, fronts, backs)

    manifest = build_index(settings, extractor, progress=False)
    assert manifest["images"] == {**manifest["images"], "extracted": 2,
                                  "reused": distinct_images(db) - 2}
    assert manifest["fronts"][row] == "images/changed_front.png"
    full = dataclasses.replace(settings, features_dir=tmp_path / "full")
    assert build_index(full, extractor, progress=False)["images"]["extracted"] == distinct_images(db)
    assert_same_banks(settings.features_dir, full.features_dir)
    # every image in use is cached, and the cache holds at most twice that
    cache = ChunkCache(settings.features_dir, model_fingerprint(extractor))
    hashes, _ = hash_images(load_catalogue(db), [*fronts, *backs])
    assert set(hashes.values()) <= cache.hashes()
    assert len(cache.hashes()) <= 2 * distinct_images(db)
    assert set(cache.sketches(set(hashes.values()))) == set(hashes.values())  # each one's flag
    # ... and so are the synthetic copies the whitening was learned from, one an image (no
    # flags: a copy's canvas is not its content's)
    copies = ChunkCache(settings.features_dir, cache.model + SUFFIX)
    assert set(hashes.values()) <= copies.hashes() and copies.sketches(copies.hashes()) == {}
    assert manifest["whitening"]["synthetic_copies"] == distinct_images(db)


def test_searches_go_first_and_a_chunk_of_another_model_is_refused(indexed_settings, redis,
                                                                   run_worker, extractor):
    settings = dataclasses.replace(indexed_settings, precision="float32")
    chunk = Queue(index_queue_name(settings), connection=redis).enqueue(
        CHUNK_FUNC, kwargs={"model": "0" * 16, "key": "k", "paths": [], "hashes": []})
    search = Queue(settings.queue_name, connection=redis).enqueue(JOB_FUNC, kwargs={})
    run_worker(settings)
    search.refresh()
    chunk.refresh()
    assert search.get_status() == chunk.get_status() == JobStatus.FAILED
    assert search.started_at < chunk.started_at, "the search, enqueued last, ran first"
    assert "is for model 0000000000000000" in chunk.meta["error"]
    assert chunk.meta["error_type"] == "ChunkRefused"
    assert not list(settings.features_dir.glob("chunks/*/k.npz"))


def test_a_chunk_a_crash_left_empty_or_cut_short_is_extracted_again(tmp_path):
    """np.load raises EOFError for an empty file and BadZipFile for a truncated one; every
    build after such a crash stopped with a traceback until the file was deleted by hand."""
    from worker.indexing.chunks import ChunkCache

    cache = ChunkCache(tmp_path, "model")
    cache.write("good", ["a", "b"], np.ones((2, 3), np.float32))
    cache.write("cut", ["c", "d"], np.ones((2, 3), np.float32))
    cut = cache.folder / "cut.npz"
    cut.write_bytes(cut.read_bytes()[:-40])
    (cache.folder / "empty.npz").write_bytes(b"")
    found = cache.rows({"a", "c"}, 3)  # a build's read of the rows skips them...
    assert set(found) == {"a"} and np.array_equal(found["a"], np.ones(3, np.float32))
    assert cache.hashes() == {"a", "b"}  # ...and its plan extracts their images again
    assert sorted(p.name for p in cache.folder.iterdir()) == ["good.npz"]  # deleted

    # only the rows member damaged (its hashes readable): planned again all the same
    cache.write("rows-cut", ["e"], np.ones((1, 3), np.float32))
    path = cache.folder / "rows-cut.npz"
    data = bytearray(path.read_bytes())
    at = data.index(np.float32(1).tobytes())  # a value of the rows changed: its CRC fails
    data[at:at + 4] = np.float32(2).tobytes()
    path.write_bytes(bytes(data))
    assert cache.hashes() == {"a", "b"} and not path.exists()


def test_a_catalogue_of_no_designs_is_refused_before_the_caches_are_touched(tmp_path):
    """A header-only pairs.csv (or one whose last design was removed by hand) pruned the
    copies cache to nothing, then np.stack([]) ended the build with a traceback."""
    from worker.core.catalogue import CatalogueError
    from worker.core.settings import Settings
    from worker.indexing.build import build_index

    settings = Settings(database_dir=tmp_path / "db", features_dir=tmp_path / "features")
    settings.database_dir.mkdir()
    settings.catalogue_csv.write_text("name,front,back\n")
    cached = settings.features_dir / "chunks" / "model-copies" / "kept.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"rows")
    with pytest.raises(CatalogueError, match="lists no designs: nothing to index"):
        build_index(settings, extractor=None, progress=False)
    assert cached.read_bytes() == b"rows"
    env = {**os.environ, "DATABASE_DIR": str(settings.database_dir),
           "FEATURES_DIR": str(settings.features_dir), "VGG16_WEIGHTS": "bsds500"}
    code = ("import sys; from worker.cli.index import main; code = main(['--no-progress']); "
            "sys.exit(3 if 'tensorflow' in sys.modules else code)")  # refused before the model
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "lists no designs" in proc.stderr, proc.stderr[-2000:]


def test_a_descriptor_redefined_under_its_name_gets_a_cache_of_its_own():
    """Its rows' width was not in the fingerprint: the old chunks read as held, were skipped
    as misshapen, and every build failed with ChunkMissing."""
    from types import SimpleNamespace

    def fingerprint(dim: int) -> str:
        return model_fingerprint(SimpleNamespace(
            weights_fingerprint="w", descriptor="grey-dir345", precision="float32", trim=True,
            model_id=None, dim=dim))

    assert fingerprint(470) == fingerprint(470) != fingerprint(476)
