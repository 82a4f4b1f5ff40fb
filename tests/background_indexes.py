"""The catalogues tests/test_near_duplicates.py searches (300 look-alike designs, and the
24-design sample with a white T-shirt and three line sketches), indexed by
`worker.cli.index` (as `make run` builds an index) in one process started with the session
at the lowest CPU priority. Their ~1,250 forward passes then use the CPU the other tests
leave idle while they wait on workers, Redis and a browser; that module runs last and waits
for what is left (docs/performance.md, "The test suite"). `python -m
tests.background_indexes ROOT` is that process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from worker.core.settings import DEFAULT_DESCRIPTOR, REPO_ROOT, Settings
from worker.dev.processes import stop_process
from worker.dev.sample import write_catalogue
from worker.dev.services import service_env
from worker.pipeline.precision import cpu_flags, has_bf16, resolve_precision

MODULE = "tests/test_near_duplicates.py"
LOOKALIKES = 300  # the size of the catalogue the verdicts were calibrated on
SEED = 7
CATALOGUES = ("lookalikes", "white")  # built in this order
WAIT_S = 500  # the longest a fixture waits: inside the 600 s a test may take


# The suite's banks are built by one float VGG16 (conftest's `extractor`) and served by the
# workers and commands it starts, so where `auto` would pick int8 (a CPU with VNNI and no
# bfloat16 units) those run float32; int8 has its own tests with their own index (test_int8).
SUITE_PRECISION = "float32" if resolve_precision("auto", DEFAULT_DESCRIPTOR)[0] == "int8" \
    else "auto"


def precision() -> str:
    """bfloat16 where the CPU has its units (as the calibrating benchmark and PRECISION=auto
    run), else float32 (where `auto` may run int8: see SUITE_PRECISION): the module's
    in-process model's precision too."""
    return "bfloat16" if has_bf16(cpu_flags()) else "float32"


def searching(item: pytest.Item) -> bool:
    """Is `item` one of the tests that search these indexes?"""
    return item.nodeid.startswith(MODULE)


def wanted(items: list[pytest.Item]) -> bool:
    return any(map(searching, items))


def last(items: list[pytest.Item]) -> None:
    """The module's tests after every other (a stable sort keeps each part's order)."""
    items.sort(key=searching)


def white_tee(side: str) -> Image.Image:
    """A white T-shirt drawn in black outline on white paper, a black logo on its front: a
    design that reads as a line sketch (its fill is the paper's white, its marks no colour;
    a logo in colour would make it a coloured drawing: `appearance.hue_share`)."""
    img = Image.new("RGB", (320, 320), "white")
    draw = ImageDraw.Draw(img)
    draw.polygon([(100, 40), (140, 40), (160, 60), (180, 40), (220, 40), (300, 90), (270, 140),
                  (240, 120), (240, 290), (80, 290), (80, 120), (50, 140), (20, 90)],
                 fill="white", outline="black", width=3)
    if side == "front":
        draw.rectangle((175, 80, 205, 110), fill=(25, 25, 30))
    else:
        draw.line((120, 50, 200, 50), fill="black", width=2)
    return img


SKETCHED_GARMENT_OF = 5  # a sample design whose garment's other designs are filed as sketches


def filed_sketches() -> list:
    """Three sample designs of SKETCHED_GARMENT_OF's garment (itself left out), filed as line
    sketches beside their drawings, as a team files the flats of its range."""
    from worker.dev.sample import make_designs

    designs = make_designs(24, seed=SEED)
    return [d for i, d in enumerate(designs) if d.garment == designs[SKETCHED_GARMENT_OF].garment
            and i != SKETCHED_GARMENT_OF][:3]


def write_white(db: Path) -> None:
    """The 24-design sample (coloured drawings), one white T-shirt and the line sketches of
    three designs of one garment (`filed_sketches`)."""
    import numpy as np

    from benchmarks.lookalike_edits import lineart
    from worker.core.catalogue import load_catalogue, write_catalogue_csv

    write_catalogue(db, 24, seed=SEED)
    cat = load_catalogue(db)
    names, fronts, backs = list(cat.names), list(cat.fronts), list(cat.backs)
    extra = {column: list(values) for column, values in cat.extra.items()}
    drawn = [("white-tee", white_tee, ("tshirt", "SS26"))]
    drawn += [(f"sketch-{d.name}", lambda side, d=d: lineart(d, side, np.random.default_rng(0)),
               tuple(values[cat.names.index(d.name)] for values in cat.extra.values()))
              for d in filed_sketches()]
    for name, draw, values in drawn:
        for side, paths in (("front", fronts), ("back", backs)):
            draw(side).save(db / "images" / f"{name}_{side}.png")
            paths.append(f"images/{name}_{side}.png")
        names.append(name)
        for column, value in zip(extra, values, strict=True):
            extra[column].append(value)
    write_catalogue_csv(db, names, fronts, backs, extra)


def settings_of(root: Path, name: str) -> Settings:
    return Settings(database_dir=root / name / "db", features_dir=root / name / "features",
                    vgg16_weights="bsds500", precision=precision())


class BackgroundIndexes:
    """The catalogues written now; their indexes built by a niced child process, which
    leaves `<name>.exit` (the build's exit status) after each."""

    def __init__(self, root: Path):
        self.root = root
        write_catalogue(root / "lookalikes" / "db", LOOKALIKES, seed=SEED)
        write_white(root / "white" / "db")
        self.log = root / "index.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["nice", "-n", "19", sys.executable, "-m", "tests.background_indexes", str(root)],
                cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)

    def ready(self, name: str) -> Settings:
        """`name`'s settings once its index is built; the test fails with the build's own
        words if it failed or took over WAIT_S from now."""
        done = self.root / f"{name}.exit"
        deadline = time.monotonic() + WAIT_S
        while not done.exists() and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        code = done.read_text().strip() if done.exists() else None
        if code != "0":
            reason = f"exited {code}" if code else \
                "stopped before it" if self.process.poll() is not None else f"took over {WAIT_S} s"
            pytest.fail(f"the {name} index build {reason}: {self.log.read_text()[-3000:]}")
        return settings_of(self.root, name)

    def stop(self) -> None:
        stop_process(self.process)


def main(root: Path) -> None:
    from worker.cli.index import main as build

    for name in CATALOGUES:
        os.environ.update(service_env(settings_of(root, name)))
        code = build(["--no-progress"])
        (root / f"{name}.part").write_text(str(code))
        (root / f"{name}.part").rename(root / f"{name}.exit")  # whole when it appears


if __name__ == "__main__":
    main(Path(sys.argv[1]))
