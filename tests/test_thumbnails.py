"""Decoded grid thumbnails kept in RAM within THUMB_CACHE_MB (worker/pipeline/thumbnails.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from worker.core.catalogue import load_catalogue
from worker.core.settings import InvalidSetting, Settings
from worker.dev.sample import write_catalogue
from worker.pipeline import thumbnails
from worker.pipeline.thumbnails import (
    REMOVED,
    ThumbnailCache,
    load_thumbnail,
    thumbnail_path,
    write_thumbnail,
)

PAIR_BYTES = 2 * 150 * 150 * 3  # two square thumbnails


def _write(features_dir, names, shade=0):
    for i, name in enumerate(names):
        pixels = np.full((300, 300, 3), (shade + 10 * i) % 256, np.uint8)
        write_thumbnail(features_dir, name, Image.fromarray(pixels))


def test_a_thumbnail_is_decoded_once_then_served_from_ram(tmp_path, monkeypatch):
    _write(tmp_path, ["a.png"])
    cache = ThumbnailCache(10 * PAIR_BYTES)
    first = cache.get(thumbnail_path(tmp_path, "a.png"))
    assert first.shape == (150, 150, 3) and not first.flags.writeable
    decoded = []
    monkeypatch.setattr("worker.pipeline.thumbnails._decode", lambda path: decoded.append(path))
    assert cache.get(thumbnail_path(tmp_path, "a.png")) is first and decoded == []


def test_the_cache_stays_within_its_budget_dropping_the_least_recently_used(tmp_path):
    names = [f"{i}.png" for i in range(5)]
    _write(tmp_path, names)
    cache = ThumbnailCache(3 * PAIR_BYTES // 2)  # three single thumbnails
    for name in names[:3]:
        cache.get(thumbnail_path(tmp_path, name))
    cache.get(thumbnail_path(tmp_path, names[0]))  # 0 is now the most recently used
    cache.get(thumbnail_path(tmp_path, names[3]))  # drops 1, the least recently used
    held = {key[0] for key in cache._pixels}
    assert held == {str(thumbnail_path(tmp_path, n)) for n in (names[0], names[2], names[3])}
    assert cache.nbytes == 3 * 150 * 150 * 3 <= cache.budget_bytes


def test_a_rewritten_thumbnail_is_decoded_afresh(tmp_path):
    # no clock involved: the new file is renamed into place, so it is another inode
    _write(tmp_path, ["a.png"], shade=0)
    cache = ThumbnailCache(10 * PAIR_BYTES)
    path = thumbnail_path(tmp_path, "a.png")
    assert cache.get(path)[0, 0, 0] < 5
    _write(tmp_path, ["a.png"], shade=200)
    assert cache.get(path)[0, 0, 0] > 190


def test_thumbnails_rewritten_or_deleted_are_dropped_and_preload_refills(tmp_path):
    names = ["a.png", "b.png", "c.png"]
    _write(tmp_path, names)
    cache = ThumbnailCache(10 * PAIR_BYTES)
    assert cache.preload(tmp_path, names) == 3
    _write(tmp_path, ["a.png"], shade=100)  # re-indexed
    thumbnail_path(tmp_path, "b.png").unlink()  # design removed
    assert cache.drop_stale() == 2 and len(cache) == 1
    assert cache.nbytes == 150 * 150 * 3
    assert cache.preload(tmp_path, names) == 2  # a decoded afresh, b gone, c kept
    assert cache.get(thumbnail_path(tmp_path, "a.png"))[0, 0, 0] > 90


def test_preload_stops_when_the_next_thumbnail_would_not_fit(tmp_path, monkeypatch):
    names = [f"{i}.png" for i in range(10)]
    _write(tmp_path, names[1:])  # 0 has no thumbnail
    decoded = []
    real = thumbnails._decode
    monkeypatch.setattr(thumbnails, "_decode", lambda path: decoded.append(path) or real(path))
    cache = ThumbnailCache(7 * 150 * 150 * 3 // 2)  # room for 3.5 thumbnails
    assert cache.preload(tmp_path, names) == 3
    assert {key[0] for key in cache._pixels} == {str(thumbnail_path(tmp_path, n))
                                                 for n in names[1:4]}
    assert len(decoded) == 4  # the 4th was decoded, did not fit, and ended the preload
    assert cache.nbytes == 3 * 150 * 150 * 3


def test_a_zero_budget_keeps_nothing(tmp_path):
    _write(tmp_path, ["a.png"])
    cache = ThumbnailCache(0)
    assert cache.get(thumbnail_path(tmp_path, "a.png")).shape == (150, 150, 3)
    assert len(cache) == 0 and cache.preload(tmp_path, ["a.png"]) == 0


def test_a_missing_thumbnail_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        ThumbnailCache(PAIR_BYTES).get(thumbnail_path(tmp_path, "nothing.png"))


def test_a_missing_thumbnail_is_made_from_the_drawing_once_and_stored(tmp_path, monkeypatch):
    # banks built before thumbnails existed: the first grid makes them, later ones reuse them
    write_catalogue(tmp_path / "db", 2, seed=3)
    cat = load_catalogue(tmp_path / "db")
    features, cache = tmp_path / "features", ThumbnailCache(10 * PAIR_BYTES)
    first = load_thumbnail(features, cat, cat.fronts[0], cache)
    assert thumbnail_path(features, cat.fronts[0]).is_file()
    assert max(first.shape[:2]) == 150 and first.shape[2] == 3

    def no_drawing(*args, **kwargs):
        raise AssertionError("the full drawing was decoded again")

    monkeypatch.setattr("worker.pipeline.thumbnails.load_image", no_drawing)
    assert load_thumbnail(features, cat, cat.fronts[0], cache) is first
    # and stored: a worker with no cache reads it from disk, not from the drawing
    assert np.array_equal(load_thumbnail(features, cat, cat.fronts[0], ThumbnailCache(0)), first)


def test_a_design_removed_under_a_running_search_gets_a_blank_cell_not_a_failure(tmp_path):
    """A removal deletes the drawing and its thumbnails once the catalogue has switched; a
    search still on the generation before ranks it and draws its grid."""
    from worker.pipeline.thumbnails import REMOVED

    write_catalogue(tmp_path / "db", 2, seed=3)
    cat = load_catalogue(tmp_path / "db")
    features, cache = tmp_path / "features", ThumbnailCache(10 * PAIR_BYTES)
    assert load_thumbnail(features, cat, cat.fronts[0], cache).shape[2] == 3  # cached too
    thumbnail_path(features, cat.fronts[0]).unlink()
    cat.image_path(cat.fronts[0]).unlink()
    assert load_thumbnail(features, cat, cat.fronts[0], cache) is REMOVED
    assert load_thumbnail(features, cat, cat.fronts[1], cache) is not REMOVED


def test_a_catalogue_drawing_that_cannot_be_read_gets_a_blank_cell_not_a_failed_search(
        tmp_path, caplog):
    """The search failed, its page saying "not a JPEG or PNG image": words about the user's
    upload, for a catalogue file damaged on disk."""
    write_catalogue(tmp_path / "db", 2, seed=3)
    cat = load_catalogue(tmp_path / "db")
    cat.image_path(cat.fronts[0]).write_bytes(b"not an image at all")
    with caplog.at_level("WARNING", logger=thumbnails.__name__):
        assert load_thumbnail(tmp_path / "features", cat, cat.fronts[0], ThumbnailCache(0)) is REMOVED
    assert f"the catalogue drawing {cat.fronts[0]} cannot be read" in caplog.text
    assert load_thumbnail(tmp_path / "features", cat, cat.fronts[1], ThumbnailCache(0)) is not REMOVED


def test_the_index_makes_again_thumbnails_of_drawings_renamed_into_place(tmp_path):
    """Front and back swapped by renaming (or restored by `cp -p`) keep mtimes older than
    their thumbnails: the grid showed the old drawings while the search ranked the new."""
    import os

    from worker.indexing.build import refresh_thumbnails

    write_catalogue(tmp_path / "db", 1, seed=3)
    cat = load_catalogue(tmp_path / "db")
    settings = Settings(database_dir=tmp_path / "db", features_dir=tmp_path / "features")
    front, back = cat.fronts[0], cat.backs[0]
    refresh_thumbnails(cat, [front, back], settings)
    before = {rel: ThumbnailCache(0).get(thumbnail_path(settings.features_dir, rel))
              for rel in (front, back)}
    os.rename(cat.image_path(front), tmp_path / "swap.png")
    os.rename(cat.image_path(back), cat.image_path(front))
    os.rename(tmp_path / "swap.png", cat.image_path(back))
    refresh_thumbnails(cat, [front, back], settings)
    for rel, other in ((front, back), (back, front)):
        assert np.array_equal(ThumbnailCache(0).get(thumbnail_path(settings.features_dir, rel)),
                              before[other])


def test_a_thumbnail_a_crash_cut_short_is_made_again_not_a_failed_search(tmp_path):
    write_catalogue(tmp_path / "db", 1, seed=3)
    cat = load_catalogue(tmp_path / "db")
    features, rel = tmp_path / "features", cat.fronts[0]
    good = load_thumbnail(features, cat, rel, ThumbnailCache(0))
    path = thumbnail_path(features, rel)
    path.write_bytes(path.read_bytes()[:100])
    assert np.array_equal(load_thumbnail(features, cat, rel, ThumbnailCache(0)), good)
    assert np.array_equal(ThumbnailCache(0).get(path), good)  # stored whole again


def test_another_thumbnail_size_never_reads_thumbnails_made_for_the_old_one(tmp_path, monkeypatch):
    write_catalogue(tmp_path / "db", 1, seed=3)
    cat = load_catalogue(tmp_path / "db")
    features, rel = tmp_path / "features", cat.fronts[0]
    assert max(load_thumbnail(features, cat, rel, ThumbnailCache(PAIR_BYTES)).shape[:2]) == 150
    old = thumbnail_path(features, rel)
    monkeypatch.setattr("worker.pipeline.thumbnails.THUMB", 100)  # the grid's size changed
    assert thumbnail_path(features, rel) != old
    small = load_thumbnail(features, cat, rel, ThumbnailCache(PAIR_BYTES))
    assert max(small.shape[:2]) == 100 and thumbnail_path(features, rel).is_file()
    assert old.is_file()  # the old size's file is left for a worker that still draws it


def test_a_thumbnail_that_cannot_be_stored_is_drawn_each_time_with_one_warning(
        tmp_path, monkeypatch, caplog):
    write_catalogue(tmp_path / "db", 2, seed=3)
    cat = load_catalogue(tmp_path / "db")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("worker.pipeline.thumbnails.write_thumbnail", read_only)
    cache, features = ThumbnailCache(10 * PAIR_BYTES), tmp_path / "read-only"
    for rel in (cat.fronts[0], cat.backs[0], cat.fronts[1]):
        thumb = load_thumbnail(features, cat, rel, cache)
        assert max(thumb.shape[:2]) == 150
    assert len(cache) == 0 and not features.exists()
    assert sum("cannot store thumbnails" in r.getMessage() for r in caplog.records) == 1


def test_thumb_cache_mb_is_read_and_checked():
    assert Settings.from_env({}).thumb_cache_mb == 512
    assert Settings.from_env({"THUMB_CACHE_MB": "0"}).thumb_cache_mb == 0
    with pytest.raises(InvalidSetting, match="THUMB_CACHE_MB"):
        Settings.from_env({"THUMB_CACHE_MB": "-1"})


@pytest.mark.slow
def test_a_started_worker_renders_grids_from_the_thumbnails_it_preloaded(
        indexed_settings, extractor, indexed_client, redis, monkeypatch):
    from tests.http import post_pair
    from tests.images import N_PAIRS, design_pair
    from worker.service.process import make_worker, start_engine

    engine = start_engine(indexed_settings, extractor)
    cat = engine.snapshot.catalogue  # every distinct image (the sample has duplicates) fits
    assert len(engine.thumbnails) == len(set(cat.fronts) | set(cat.backs)) > N_PAIRS

    def no_decoding(path):
        raise AssertionError(f"{path} decoded during a search")

    monkeypatch.setattr("worker.pipeline.thumbnails._decode", no_decoding)
    monkeypatch.setattr("worker.pipeline.thumbnails.load_image", no_decoding)  # nor full drawings
    url = post_pair(indexed_client, *design_pair(3, N_PAIRS)).get_json()["url"]
    make_worker(indexed_settings, engine, redis).work(burst=True, with_scheduler=False)
    body = indexed_client.get(url).get_json()
    assert body["status"] == "finished", body.get("error")
    assert len(body["results"]) == min(20, N_PAIRS)
