"""Index generations: a build or a catalogue edit stopped at any step leaves the old
generation or the new one, the worker starts and a search succeeds; builds and edits share
one lock; an added image never overwrites one a design uses."""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time

import numpy as np
import pytest

from tests.images import N_PAIRS
from worker.core import generations
from worker.core.bank import load_bank
from worker.core.catalogue import load_catalogue, write_catalogue_csv
from worker.core.images import ImageRejected
from worker.core.settings import Settings
from worker.dev.sample import draw_side, make_designs, write_catalogue
from worker.indexing import build
from worker.indexing.build import build_index
from worker.indexing.edits import add_designs, remove_design
from worker.pipeline.preprocess import make_canvas
from worker.pipeline.ranking import top_k
from worker.pipeline.thumbnails import thumbnail_path

pytestmark = pytest.mark.slow
SMALL = 6  # designs in the catalogue the crash test edits 30-odd times
NEW = make_designs(N_PAIRS + 8, seed=7)[N_PAIRS + 5]  # a design neither catalogue has


class Crash(Exception):
    """The writer 'dies' here."""


def new_design(folder):
    front, back = folder / "new_front.png", folder / "new_back.png"
    draw_side(NEW, "front").save(front)
    draw_side(NEW, "back").save(back)
    return front, back


@pytest.fixture(scope="module")
def small(tmp_path_factory, extractor):
    """A 6-design catalogue, indexed: copied afresh for every run."""
    root = tmp_path_factory.mktemp("small")
    write_catalogue(root / "db", SMALL, seed=7)
    settings = Settings(database_dir=root / "db", features_dir=root / "features",
                        vgg16_weights="bsds500", upload_dir=root / "u", output_dir=root / "o")
    build_index(settings, extractor, progress=False)
    return settings, new_design(root)


def fresh_copy(small, folder):
    settings, images = small
    shutil.copytree(settings.database_dir, folder / "db")
    shutil.copytree(settings.features_dir, folder / "features")
    return dataclasses.replace(settings, database_dir=folder / "db",
                               features_dir=folder / "features"), images


OPERATIONS = {
    "build": lambda s, ex, images: build_index(s, ex, progress=False),
    "add": lambda s, ex, images: add_designs(s, ex, [("added", *images)]),
    "remove": lambda s, ex, images: remove_design(s, "tshirt-0000"),
}


def prepare(op, settings):
    """The build indexes a pairs.csv edited by hand (its last design dropped)."""
    if op == "build":
        cat = load_catalogue(settings.database_dir)
        write_catalogue_csv(settings.database_dir, cat.names[:-1], cat.fronts[:-1],
                            cat.backs[:-1])


def stop_at(monkeypatch, step: int | None) -> list[str]:
    """Make the writer raise Crash at its `step`-th checkpoint (None: only count them)."""
    seen: list[str] = []

    def checkpoint(what):
        seen.append(what)
        if len(seen) == step:
            raise Crash(what)

    monkeypatch.setattr(generations, "checkpoint", checkpoint)
    return seen


def assert_serves(settings, extractor, expected: list[list[str]]) -> list[str]:
    """A worker starts (cleaning up), serves one whole generation and finds a design by its
    own drawings; nothing half-written is left."""
    from worker.service.process import start_engine

    engine = start_engine(settings, extractor)
    names = engine.snapshot.catalogue.names
    assert names in expected
    bank = engine.snapshot.bank
    assert bank.manifest["names"] == names and len(bank) == len(names)
    cat = engine.snapshot.catalogue
    canvases = np.stack([make_canvas(cat.image_path(rel), trim=True)
                         for rel in (cat.fronts[-1], cat.backs[-1])])
    q = bank.project(extractor.extract(canvases))
    hit = top_k(bank, q[0], q[1], k=1, front_weight=0.5)[0]
    assert names[hit.index] == names[-1] and hit.score == pytest.approx(1.0, abs=1e-3)
    features = settings.features_dir
    assert sorted(p.name for p in features.iterdir()) == [".catalogue.lock", "CURRENT", "chunks",
                                                          "generations", "pins", "thumbs"]
    assert [p.name for p in (features / "pins").iterdir()] == [engine.reading.holder]
    assert len(list((features / "generations").iterdir())) <= 2
    assert not list(settings.database_dir.rglob(".*.part"))
    return names


def assert_edits_work(settings, names):
    remove_design(settings, names[1])
    assert load_bank(settings.features_dir).manifest["names"] == names[:1] + names[2:]


@pytest.mark.parametrize("op", OPERATIONS)
def test_a_writer_stopped_at_any_step_leaves_one_whole_generation(op, small, extractor,
                                                                  tmp_path, monkeypatch):
    settings, images = fresh_copy(small, tmp_path / "count")
    old = load_catalogue(settings.database_dir).names
    prepare(op, settings)
    steps = stop_at(monkeypatch, None)
    new = OPERATIONS[op](settings, extractor, images)["names"]
    assert len(steps) >= 8 and any(s.startswith("renamed CURRENT") for s in steps), steps
    outcomes = set()
    for step in range(1, len(steps) + 1):
        settings, images = fresh_copy(small, tmp_path / str(step))
        prepare(op, settings)
        stop_at(monkeypatch, step)
        with pytest.raises(Crash):
            OPERATIONS[op](settings, extractor, images)
        monkeypatch.setattr(generations, "checkpoint", lambda what: None)
        served = assert_serves(settings, extractor, [old, new])
        outcomes.add(tuple(served))
        if op == "build":  # pairs.csv is the user's: `make index` again picks it up
            if served == old:
                served = build_index(settings, extractor, progress=False)["names"]
        else:  # an edit brings DATABASE_DIR/pairs.csv along, even after its switch
            assert load_catalogue(settings.database_dir).names == served
        assert_edits_work(settings, served)
    assert outcomes == {tuple(old), tuple(new)}, "stops before and after the switch"


def test_a_disk_full_edit_keeps_the_old_index_and_later_edits_work(small, extractor, tmp_path,
                                                                   monkeypatch):
    # the review's case: the back bank cannot be written (disk full) in the middle of an edit
    settings, images = fresh_copy(small, tmp_path)
    old = load_catalogue(settings.database_dir).names
    real_save, calls = np.save, []

    def save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", save)
    with pytest.raises(OSError, match="No space"):
        add_designs(settings, extractor, [("added", *images)])
    monkeypatch.setattr(np, "save", real_save)
    assert load_catalogue(settings.database_dir).names == old
    catalogue = load_catalogue(settings.database_dir)  # no thumbnail of the images it stored
    assert {path.name for path in (settings.features_dir / "thumbs").rglob("*.jpg")} == {
        thumbnail_path(settings.features_dir, rel).name
        for rel in catalogue.fronts + catalogue.backs}
    assert assert_serves(settings, extractor, [old]) == old
    assert_edits_work(settings, old)
    assert add_designs(settings, extractor, [("added", *images)])["names"][-1] == "added"
    assert load_catalogue(settings.database_dir).names[-1] == "added"


def test_drawings_an_add_stored_that_nothing_lists_are_swept_after_a_grace(small, extractor,
                                                                          tmp_path):
    """An add killed before its switch, or a removal killed after it, left its stored drawings
    that no list names, and nothing ever deleted them (only disk wasted): a writer's tidy-up
    now does, and their thumbnails, once they are TEMP_GRACE_S old (an add still placing
    its drawings is younger); drawings any list names stay."""
    from worker.core.storage import TEMP_GRACE_S
    from worker.indexing.recovery import tidy

    settings, images = fresh_copy(small, tmp_path)
    manifest = add_designs(settings, extractor, [("added", *images)])
    listed = [settings.database_dir / manifest[side][-1] for side in ("fronts", "backs")]
    stray, young, dotted, full = (settings.database_dir / "images" / f"{h * 16}.png"
                                  for h in "abcd")
    for path in (stray, young, dotted, full):
        path.write_bytes(images[0].read_bytes())
    listing = settings.database_dir / "pairs.csv"  # a hand-written path naming one: it stays
    listing.write_text(listing.read_text().replace(manifest["backs"][-1], "./images/" + dotted.name)
                       .replace(manifest["fronts"][-1], str(full)))  # a full path, in no manifest
    thumb = thumbnail_path(settings.features_dir, "images/" + stray.name)
    thumb.parent.mkdir(parents=True, exist_ok=True)
    thumb.write_bytes(b"a thumbnail")
    old = time.time() - TEMP_GRACE_S - 60
    for path in (stray, dotted, full, *listed):
        os.utime(path, (old, old))
    with generations.catalogue_lock(settings.features_dir):
        done = tidy(settings)
    assert f"images/{stray.name}" in done
    assert not stray.exists() and not thumb.exists()
    assert young.exists() and dotted.exists() and full.exists()
    assert all(path.exists() for path in listed)


def test_removing_a_design_keeps_a_drawing_another_row_names_by_another_path(small, extractor,
                                                                           tmp_path):
    """A design added over HTTP stores its drawings as images/<hash>.png; a colourway listed by
    hand beside it names its back `./images/<hash>.png` or by its full path: removing the first
    design compared the strings and deleted the colourway's drawing."""
    settings, images = fresh_copy(small, tmp_path)
    manifest = add_designs(settings, extractor, [("added", *images)])
    front, back = manifest["fronts"][-1], manifest["backs"][-1]
    listing = settings.database_dir / "pairs.csv"
    catalogue = load_catalogue(settings.database_dir)
    assert listing.read_text().endswith("\n")
    listing.write_text(listing.read_text() + f"colourway,{settings.database_dir / front},./{back}"
                       + "," * len(catalogue.extra) + "\n")
    build_index(settings, extractor, progress=False)
    remove_design(settings, "added")
    assert (settings.database_dir / front).is_file() and (settings.database_dir / back).is_file()
    assert load_catalogue(settings.database_dir).names[-1] == "colourway"


def test_a_thumbnail_that_cannot_be_written_stops_the_build_as_a_disk_error(small, extractor,
                                                                           tmp_path, monkeypatch):
    """FEATURES_DIR full (or its thumbnails not writable): each drawing's thumbnail failed in
    turn and was reported as that drawing unreadable, after the whole catalogue was decoded
    (every later chunk decoded only, to list the failures); now the first chunk's error stops
    the build as a disk error."""
    import errno

    from worker.indexing import chunks

    settings, _ = fresh_copy(small, tmp_path)
    settings = dataclasses.replace(settings, features_dir=tmp_path / "empty")  # all to extract
    written = []

    def full(folder, rel, rgb):
        written.append(rel)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chunks, "write_thumbnail", full)
    with pytest.raises(OSError, match="No space left on device"):
        build_index(settings, extractor, progress=False)
    assert written  # an OSError, not UnreadableImages listing each drawing as unreadable


def test_index_if_needed_judges_again_under_the_lock_of_a_build_under_way(small, tmp_path):
    """`make run`, compose's `index --if-needed` started while `make index` runs: judged the
    index stale before that build finished, then built everything again after it (every
    drawing hashed, a new generation). Now it judges again once it holds the build's lock; an
    index that serves is still answered at once."""
    import subprocess
    import sys

    from worker.dev.services import service_env

    settings, _ = fresh_copy(small, tmp_path)
    current = settings.features_dir / "CURRENT"
    generation = current.read_text()
    os.utime(current, (time.time() - 100, time.time() - 100))  # pairs.csv newer: stale
    os.utime(settings.catalogue_csv)  # (a copy keeps its time: the session's may be older)
    log = tmp_path / "index.log"
    with generations.catalogue_lock(settings.features_dir), log.open("w") as err:  # a build
        proc = subprocess.Popen([sys.executable, "-m", "worker.cli.index", "--if-needed",
                                 "--no-progress"], env=service_env(settings),
                                stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.monotonic() + 180
        while "waiting for another index build" not in log.read_text() and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()[-2000:]
        os.utime(current)  # the build under way ends: its index serves this pairs.csv
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert "building: pairs.csv changed" in out and "a build that was under way" in out, out
    assert current.read_text() == generation  # nothing built again
    served = subprocess.run([sys.executable, "-m", "worker.cli.index", "--if-needed"],
                            env=service_env(settings), capture_output=True, text=True, timeout=60)
    assert served.returncode == 0 and "nothing to build" in served.stdout


def test_an_edit_during_a_build_waits_for_it_and_is_kept(small, extractor, tmp_path,
                                                         monkeypatch):
    settings, images = fresh_copy(small, tmp_path)
    inside, release = threading.Event(), threading.Event()
    real = build.gather_features

    def slow_compute(*args, **kwargs):
        inside.set()
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "gather_features", slow_compute)
    builder = threading.Thread(target=build_index, args=(settings, extractor),
                               kwargs={"progress": False})
    builder.start()
    assert inside.wait(60)
    editor = threading.Thread(target=add_designs, args=(settings, extractor,
                                                        [("added", *images)]))
    editor.start()
    editor.join(timeout=5)  # without the lock the edit is done by now, and the build undoes it
    release.set()
    builder.join(120)
    editor.join(120)
    assert load_bank(settings.features_dir).manifest["names"][-1] == "added"
    assert load_catalogue(settings.database_dir).names[-1] == "added"


def test_a_pinned_generation_outlives_edits_until_its_pin_is_stale(small, tmp_path):
    """A check's pin keeps the generation it is compared with past later edits (which keep
    only the current and the previous one); a pin not renewed for PIN_TTL_S goes, and then
    the generation with the next edit."""
    settings, _ = fresh_copy(small, tmp_path)
    features = settings.features_dir
    first = generations.current_id(features)
    generations.pin(features, "check-1", first)
    names = load_catalogue(settings.database_dir).names
    for name in names[:2]:  # two edits: `first` is neither current nor previous
        remove_design(settings, name)
    assert (features / "generations" / first).is_dir()
    stale = time.time() - generations.PIN_TTL_S - 60
    os.utime(features / "pins" / "check-1", (stale, stale))
    remove_design(settings, names[2])
    assert not (features / "generations" / first).exists()
    assert not (features / "pins" / "check-1").exists()
    assert len(list((features / "generations").iterdir())) == 2


def test_a_worker_keeps_the_generation_it_reads_from_other_writers_until_it_moves_on(
        small, tmp_path, extractor):
    """Edits keep the current and the previous generation; a worker on another machine may
    still read an older one (two edits during one of its jobs, or a newer index it refused),
    and on NFS a file another machine deletes is gone under the reader's maps. So a worker pins
    the generation it reads, renews the pin between jobs, moves it on with its reload and
    lets it go when it stops."""
    from worker.service.process import start_engine

    settings, _ = fresh_copy(small, tmp_path)
    features = settings.features_dir
    engine = start_engine(settings, extractor)
    first = engine.snapshot.generation
    held = features / "pins" / engine.reading.holder
    assert engine.reading.holder.startswith("worker-") and held.read_text() == first
    names = load_catalogue(settings.database_dir).names
    for name in names[:2]:  # two edits by another process: `first` is neither kept one
        remove_design(settings, name)
    assert (features / "generations" / first).is_dir()
    old = time.time() - generations.PIN_TTL_S / 2
    os.utime(held, (old, old))
    engine.reading._held = (first, time.monotonic() - generations.PIN_TTL_S / 2)
    engine.hold()  # between jobs, a pin a quarter of its life old is written again
    assert held.stat().st_mtime > old + 60 and held.read_text() == first
    assert engine.refresh()  # its next job: it reads the current generation
    assert held.read_text() == generations.current_id(features) != first
    remove_design(settings, names[2])
    assert not (features / "generations" / first).exists()
    engine.release()
    assert not held.exists()


def test_a_worker_that_refuses_a_new_index_keeps_its_pin_on_the_one_it_serves(
        small, tmp_path, extractor):
    """The pin moves to a generation before its files are read; one that cannot be loaded
    gives it back to the generation the worker goes on serving."""
    from worker.service.process import start_engine

    settings, _ = fresh_copy(small, tmp_path)
    features = settings.features_dir
    engine = start_engine(settings, extractor)
    served = engine.snapshot.generation
    remove_design(settings, load_catalogue(settings.database_dir).names[0])
    damaged = generations.current_dir(features) / "front.npy"
    damaged.write_bytes(damaged.read_bytes()[:-8])
    assert not engine.refresh() and engine.snapshot.generation == served
    assert (features / "pins" / engine.reading.holder).read_text() == served


def test_an_engine_holds_a_pinned_generation_and_gives_up_on_a_gone_one_once(
        small, tmp_path, extractor, monkeypatch):
    """A check's later chunks reuse the pinned generation's snapshot; one whose folder is gone
    falls back to the current catalogue, and is not looked for again until the index changes."""
    from worker.service import engine as engine_module
    from worker.service.process import start_engine

    settings, _ = fresh_copy(small, tmp_path)
    first = generations.current_id(settings.features_dir)
    remove_design(settings, load_catalogue(settings.database_dir).names[0])
    engine = start_engine(settings, extractor)
    loads: list[str] = []
    real = engine_module.load_generation
    monkeypatch.setattr(engine_module, "load_generation",
                        lambda db, folder: loads.append(folder.name) or real(db, folder))
    older = engine.pinned(first)
    assert older.generation == first and len(older.catalogue) == SMALL
    assert engine.pinned(first) is older and loads == [first]  # held, not loaded again
    shutil.rmtree(settings.features_dir / "generations" / first)
    gone = "20260101T000000000000Z-000000"
    assert engine.pinned(gone) is engine.snapshot and engine.pinned(gone) is engine.snapshot
    assert loads == [first, gone]  # tried once
    remove_design(settings, load_catalogue(settings.database_dir).names[0])
    assert engine.refresh()
    loads.clear()
    assert engine.pinned(gone) is engine.snapshot and loads == [gone]  # a new index: again


def test_an_index_that_cannot_be_loaded_is_tried_again_after_a_while_not_before_every_job(
        small, tmp_path, extractor, monkeypatch):
    """Each try hashes both banks and reads the catalogue: at 100k pairs ~380 MB a job."""
    from worker.core.bank import BankError
    from worker.service import engine as engine_module
    from worker.service.process import start_engine

    settings, _ = fresh_copy(small, tmp_path)
    engine = start_engine(settings, extractor)
    before = engine.snapshot
    remove_design(settings, load_catalogue(settings.database_dir).names[0])
    tries: list[int] = []
    real = engine._load_snapshot

    def unloadable():
        tries.append(1)
        raise BankError("front.npy does not match its sha256")

    monkeypatch.setattr(engine, "_load_snapshot", unloadable)
    assert not engine.refresh() and not engine.refresh() and len(tries) == 1
    assert engine.snapshot is before  # still serving the one it had
    # and says so with its heartbeat (/healthz: `index_refused`, status degraded)
    current = generations.current_id(settings.features_dir)
    assert engine.state() == {"pairsearch_serves": before.generation,
                              "pairsearch_precision": extractor.precision,
                              "pairsearch_refused": current, "pairsearch_refused_why":
                                  "front.npy does not match its sha256"} and current != before.generation
    monkeypatch.setattr(engine_module, "RELOAD_RETRY_S", 0)
    assert not engine.refresh() and len(tries) == 2  # the while passed: tried again
    monkeypatch.setattr(engine, "_load_snapshot", real)  # the fault cleared
    assert engine.refresh() and len(engine.snapshot.catalogue) == len(before.catalogue) - 1
    assert engine.state()["pairsearch_serves"] == current
    assert engine.state()["pairsearch_refused"] == engine.state()["pairsearch_refused_why"] == ""


def test_re_adding_a_removed_name_never_overwrites_a_shared_image(indexed_settings, tmp_path,
                                                                  catalogue_dir, extractor):
    # jacket-0011 is a variant of jacket-0010: both use images/jacket-0010_front.png
    db = tmp_path / "db"
    shutil.copytree(catalogue_dir, db)
    settings = dataclasses.replace(indexed_settings, database_dir=db)
    shared = db / "images" / "jacket-0010_front.png"
    before = shared.read_bytes()
    remove_design(settings, "jacket-0010")
    assert shared.read_bytes() == before  # still used by the variant
    front, back = new_design(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageRejected):
        add_designs(settings, extractor, [("jacket-0010", front, tmp_path / "bad.png")])
    assert shared.read_bytes() == before
    images = sorted(p.name for p in (db / "images").iterdir())
    manifest = add_designs(settings, extractor, [("jacket-0010", front, back)])
    assert shared.read_bytes() == before
    assert len(list((db / "images").iterdir())) == len(images) + 2
    assert manifest["fronts"][manifest["names"].index("jacket-0011")] == "images/jacket-0010_front.png"


def test_an_add_syncs_what_it_stores_and_writes_a_damaged_drawing_again(
        indexed_settings, tmp_path, catalogue_dir, extractor, monkeypatch):
    """An add's drawings and pairs.csv reach the disk before it returns (the index switch is
    synced: a power loss must not leave it naming empty files); a stored drawing that no
    longer holds the content it is named by (such a power loss before) is written again, not
    refused for good as "other content"."""
    import hashlib

    db = tmp_path / "db"
    shutil.copytree(catalogue_dir, db)
    settings = dataclasses.replace(indexed_settings, database_dir=db)
    front, back = new_design(tmp_path)
    stored = db / "images" / f"{hashlib.sha256(front.read_bytes()).hexdigest()[:16]}.png"
    stored.write_bytes(b"")  # what an unsynced write can leave after a power loss
    synced, fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 fsync(fd))[1])
    manifest = add_designs(settings, extractor, [("new-design", front, back)])
    assert stored.read_bytes() == front.read_bytes()
    row = manifest["names"].index("new-design")
    assert f"images/{stored.name}" == manifest["fronts"][row]
    for path in (stored, db / manifest["backs"][row], db / "pairs.csv"):  # synced aside
        assert any(p.startswith(f"{path.parent}/.{path.name}.") for p in synced), path
    assert {str(db / "images"), str(db)} <= set(synced)  # and their renames


def test_a_check_names_the_catalogue_version_in_either_layout(tmp_path):
    """A generation's id; for a flat FEATURES_DIR (no CURRENT), its manifest's write time in
    the same form, not the folder's name (which never changes)."""
    from worker.core.generations import GENERATION, new_generation
    from worker.service.checks import _version
    from worker.service.engine import Snapshot

    def version(stamp):
        return _version(Snapshot(None, None, stamp))

    generation = new_generation(tmp_path).name
    assert GENERATION.fullmatch(generation)
    assert version((generation, 1, 2, 3)) == generation
    flat = version(("features", 1, 2, 1_796_301_182_973_445_000))
    assert flat == "20261203T123302973445Z" and version(None) is None


def test_a_worker_s_edit_does_not_wait_behind_a_build(tmp_path):
    """An edit over HTTP runs in a search worker: behind `make index` (the whole build) it held
    that worker's searches for 120 s, then failed `catalogue_busy` all the same. Now it is
    refused at once while a build holds the lock; behind another edit (seconds) it waits, and
    the CLI's edit (no edit id) waits for a build as before."""
    from worker.core.settings import Settings
    from worker.indexing.edits import remove_design

    settings = Settings(database_dir=tmp_path / "db", features_dir=tmp_path / "features")
    held, release = threading.Event(), threading.Event()

    def hold(holder):
        with generations.catalogue_lock(settings.features_dir, holder=holder):
            held.set()
            release.wait(60)

    builder = threading.Thread(target=hold, args=("build",))
    builder.start()
    assert held.wait(10)
    with pytest.raises(generations.CatalogueBusy):
        remove_design(settings, "x", edit_id="e1")
    assert builder.is_alive()  # refused while the build still held the lock, not after
    release.set()
    builder.join()
    assert (settings.features_dir / generations.LOCK).read_text() == ""  # its word went with it
    held.clear(), release.clear()
    editor = threading.Thread(target=hold, args=("edit",))
    editor.start()
    assert held.wait(10)
    threading.Timer(0.3, release.set).start()
    with generations.catalogue_lock(settings.features_dir, 60, behind_build=False):
        assert release.is_set()  # it waited for the edit (released 0.3 s in)
    editor.join()


def test_a_writer_waiting_for_the_lock_says_so(tmp_path, caplog):
    """`make index` behind another build or an edit sat silent: it looked like a hang."""
    import logging

    release = threading.Event()

    def holder():
        with generations.catalogue_lock(tmp_path):
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    time.sleep(0.2)
    with caplog.at_level(logging.INFO, logger="worker.core.generations"):
        with pytest.raises(generations.CatalogueBusy):
            with generations.catalogue_lock(tmp_path, wait_s=0.2):
                pass
        threading.Timer(0.3, release.set).start()
        with generations.catalogue_lock(tmp_path):  # waits as long as it takes
            pass
    thread.join()
    assert [r.message for r in caplog.records].count(
        "waiting for another index build or catalogue edit to finish") == 2


def test_a_worker_that_cannot_read_which_index_is_current_serves_the_one_loaded(
        small, tmp_path, extractor):
    """An I/O error reading CURRENT (NFS's stale handle just after another machine switched
    it, EIO) failed every job before it started, with the loaded index fine in memory."""
    from worker.service.process import start_engine

    settings, _ = fresh_copy(small, tmp_path)
    engine = start_engine(settings, extractor)
    loaded = engine.snapshot
    current = settings.features_dir / "CURRENT"
    kept = current.read_text()
    current.unlink()
    current.mkdir()  # reading it: IsADirectoryError, an OSError that is not "not found"
    try:
        assert engine.refresh() is False and engine.snapshot is loaded
    finally:
        current.rmdir()
        current.write_text(kept)
    assert engine.refresh() is False and engine.snapshot is loaded  # read again: the same


def test_an_edit_is_seen_applied_after_a_build_and_another_edit_deleted_its_generation(
        small, tmp_path, extractor):
    """What the edits and the builds write themselves (tests/test_orphans.py settles a dead
    worker's edit from manifests written by hand): an edit, `make index`, one more edit; the
    first edit's own generation is gone, and it was reported "nothing was changed". Then a
    third edit: the build's generation is gone too, and the second edit carried the id."""
    settings, _ = fresh_copy(small, tmp_path)
    names = load_catalogue(settings.database_dir).names
    remove_design(settings, names[0], edit_id="first")
    applied = generations.current_id(settings.features_dir)
    build_index(settings, extractor, progress=False)
    remove_design(settings, names[1], edit_id="second")
    assert not (settings.features_dir / "generations" / applied).exists()
    assert generations.landed(settings.features_dir, "first")
    assert generations.landed(settings.features_dir, "second")
    assert not generations.landed(settings.features_dir, "never")
    remove_design(settings, names[2], edit_id="third")
    assert generations.landed(settings.features_dir, "first")
