"""Duplicates inside a real catalogue: re-scanned copies of some designs filed as designs of
their own are found in groups, exactly, by the real model at index time; a catalogue edit
that adds a copy makes its group appear in the next generation; the CLI writes the CSV."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.lookalike_edits import rescan
from worker.core.catalogue import write_catalogue_csv
from worker.core.duplicates import duplicate_groups, read_duplicates
from worker.dev.sample import draw_side, make_designs
from worker.dev.services import service_env

pytestmark = pytest.mark.slow
ORIGINALS = 16
COPIED = {2: 1, 7: 1, 12: 1}  # design -> re-scanned copies filed under other names
ADDED_LATER = 9  # copied by a catalogue edit


def _copy_images(design, n: int, seed: int):
    rng = np.random.default_rng(seed)
    return [(rescan(draw_side(design, "front"), rng), rescan(draw_side(design, "back"), rng))
            for _ in range(n)]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, extractor):
    """A catalogue of ORIGINALS unrelated designs (no shared fronts) plus re-scanned copies
    of COPIED, indexed; the expected groups as sets of names."""
    from worker.core.settings import Settings
    from worker.indexing.build import build_index

    root = tmp_path_factory.mktemp("seeded")
    (root / "db" / "images").mkdir(parents=True)
    designs = make_designs(ORIGINALS, seed=3, variant_every=0)
    rows, expected = [], []
    for d in designs:
        for side in ("front", "back"):
            draw_side(d, side).save(root / "db" / "images" / f"{d.name}_{side}.png")
        rows.append((d.name, f"images/{d.name}_front.png", f"images/{d.name}_back.png"))
    for i, n in COPIED.items():
        group = {designs[i].name}
        for c, (front, back) in enumerate(_copy_images(designs[i], n, seed=i), start=1):
            name = f"rescan{c}-of-{designs[i].name}"
            front.save(root / "db" / "images" / f"{name}_front.png")
            back.save(root / "db" / "images" / f"{name}_back.png")
            rows.append((name, f"images/{name}_front.png", f"images/{name}_back.png"))
            group.add(name)
        expected.append(group)
    write_catalogue_csv(root / "db", *(list(col) for col in zip(*rows, strict=True)))
    settings = Settings(database_dir=root / "db", features_dir=root / "features")
    build_index(settings, extractor, progress=False)
    return settings, designs, expected


def _groups(settings, min_verdict="near-duplicate") -> list[set[str]]:
    manifest, pairs = read_duplicates(settings.features_dir)
    return [set(g["designs"]) for g in duplicate_groups(pairs, manifest["names"], min_verdict)]


def _all_scores(settings) -> str:
    """Every pair score above 0.3, for a failure message."""
    from worker.core.bank import load_bank

    bank = load_bank(settings.features_dir)
    s = 0.5 * bank.front @ bank.front.T + 0.5 * bank.back @ bank.back.T
    names = bank.manifest["names"]
    return ", ".join(f"{names[i]}~{names[j]}={s[i, j]:.3f}" for i, j in zip(*np.nonzero(s > 0.3), strict=True)
                     if i < j)


def test_the_groups_are_exactly_the_seeded_copies(seeded):
    settings, designs, expected = seeded
    groups = _groups(settings)
    assert sorted(map(sorted, groups)) == sorted(map(sorted, expected)), _all_scores(settings)
    in_groups = set().union(*groups)
    unrelated = {d.name for i, d in enumerate(designs) if i not in COPIED}
    assert not unrelated & in_groups
    # a stricter verdict only splits groups, a looser one only joins them
    assert all(any(g <= n for n in groups) for g in _groups(settings, "copy"))
    assert all(any(n <= g for g in _groups(settings, "similar")) for n in groups)


def test_an_edit_that_adds_a_copy_lists_its_group_in_the_new_generation(seeded, extractor,
                                                                         tmp_path):
    import shutil

    from worker.core.generations import current_id
    from worker.indexing.edits import add_designs, remove_design

    base, designs, expected = seeded
    settings = dataclasses.replace(base, database_dir=tmp_path / "db",
                                   features_dir=tmp_path / "features")
    shutil.copytree(base.database_dir, settings.database_dir)
    shutil.copytree(base.features_dir, settings.features_dir)
    before = current_id(settings.features_dir)
    (front, back), = _copy_images(designs[ADDED_LATER], 1, seed=99)
    front.save(tmp_path / "f.png")
    back.save(tmp_path / "b.png")
    add_designs(settings, extractor, [("late-copy", tmp_path / "f.png", tmp_path / "b.png")])
    manifest, _ = read_duplicates(settings.features_dir)
    assert manifest["generation"] == current_id(settings.features_dir) != before
    new_group = {designs[ADDED_LATER].name, "late-copy"}
    assert sorted(map(sorted, _groups(settings))) == sorted(map(sorted, [*expected, new_group]))

    remove_design(settings, next(iter(expected[0] - {designs[2].name})))  # drop a copy of 2
    assert sorted(map(sorted, _groups(settings))) == sorted(map(sorted, [*expected[1:], new_group]))


def test_the_cli_writes_a_row_per_pair_with_its_group(seeded, tmp_path):
    settings, _, expected = seeded
    out = tmp_path / "dups.csv"
    proc = subprocess.run([sys.executable, "-m", "worker.cli.duplicates", "--csv", str(out)],
                          env=service_env(settings), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))  # for Excel: a byte-order mark
    assert list(rows[0]) == ["a", "b", "similarity", "verdict", "group", "sketches"]
    by_group: dict[str, set[str]] = {}
    for row in rows:
        assert row["verdict"] in ("copy", "near-duplicate") and 75 <= int(row["similarity"]) <= 100
        by_group.setdefault(row["group"], set()).update((row["a"], row["b"]))
    assert sorted(map(sorted, by_group.values())) == sorted(map(sorted, expected))
    assert sorted(by_group) == [str(i) for i in range(1, len(expected) + 1)]
    printed = subprocess.run([sys.executable, "-m", "worker.cli.duplicates"],
                             env=service_env(settings), capture_output=True, text=True, timeout=60)
    assert f"{len(expected)} group(s)" in printed.stdout


def test_an_edit_stores_the_new_rows_coarse_index(seeded, extractor, tmp_path):
    """With SEARCH_ANN_MIN_PAIRS reached, an edit's generation stores its coarse index of the
    new rows (workers load it rather than build it); below it, none; a whole build stores
    one too."""
    import shutil

    from worker.core.bank import COARSE_INDEX, load_bank
    from worker.core.generations import current_dir
    from worker.indexing.build import build_index
    from worker.indexing.edits import add_designs, remove_design
    from worker.pipeline.ann import CODES, _stored

    base, designs, expected = seeded
    settings = dataclasses.replace(base, database_dir=tmp_path / "db",
                                   features_dir=tmp_path / "features", search_ann_min_pairs=0)
    shutil.copytree(base.database_dir, settings.database_dir)
    shutil.copytree(base.features_dir, settings.features_dir)
    n = len(load_bank(settings.features_dir))
    assert load_bank(settings.features_dir).stored_coarse is None  # built at 100,000
    (front, back), = _copy_images(designs[ADDED_LATER], 1, seed=98)
    front.save(tmp_path / "f.png")
    back.save(tmp_path / "b.png")
    add_designs(settings, extractor, [("late-copy", tmp_path / "f.png", tmp_path / "b.png")])
    bank = load_bank(settings.features_dir)
    assert bank.manifest["coarse_index"] == {"codes": CODES, "pairs": n + 1}
    assert (current_dir(settings.features_dir) / COARSE_INDEX).is_file()
    assert len(_stored(bank)) == n + 1
    remove_design(dataclasses.replace(settings, search_ann_min_pairs=n + 1), "late-copy")
    bank = load_bank(settings.features_dir)
    assert bank.manifest["coarse_index"] is None and bank.stored_coarse is None
    assert not (current_dir(settings.features_dir) / COARSE_INDEX).exists()
    build_index(settings, extractor, progress=False)  # a whole build stores it too
    bank = load_bank(settings.features_dir)
    assert bank.manifest["coarse_index"] == {"codes": CODES, "pairs": n}
    assert len(_stored(bank)) == n


def test_line_sketches_filed_as_designs_are_recorded_and_judged_without_a_lead(
        seeded, extractor, tmp_path):
    """Two line sketches of designs of one garment, added by an edit and then indexed by a
    whole build: the list records both sides of each as sketches (the build reads them from
    the chunks it extracted) and judges their pair on its score alone."""
    import shutil

    from benchmarks.lookalike_edits import lineart
    from worker.core.bank import load_bank
    from worker.indexing.build import build_index
    from worker.indexing.edits import add_designs, remove_design
    from worker.pipeline.duplicates import find_duplicates
    from worker.pipeline.verdicts import duplicate_thresholds_in

    base, designs, _ = seeded
    settings = dataclasses.replace(base, database_dir=tmp_path / "db",
                                   features_dir=tmp_path / "features")
    shutil.copytree(base.database_dir, settings.database_dir)
    shutil.copytree(base.features_dir, settings.features_dir)
    garment = designs[0].garment
    pair = [d for d in designs if d.garment == garment][:2]
    assert len(pair) == 2
    rng = np.random.default_rng(4)
    added = []
    for d in pair:
        paths = [tmp_path / f"sketch-{d.name}_{side}.png" for side in ("front", "back")]
        for path, side in zip(paths, ("front", "back"), strict=True):
            lineart(d, side, rng).save(path)
        added.append((f"sketch-{d.name}", *paths))
    add_designs(settings, extractor, added)
    for step in ("edit", "build"):
        if step == "build":
            build_index(settings, extractor, progress=False)
        manifest, pairs = read_duplicates(settings.features_dir)
        assert manifest["sketch_share"] == round(4 / (2 * len(manifest["names"])), 3), step
        sketches = {manifest["names"][r] for r in np.nonzero(pairs.sketched.all(axis=1))[0]}
        assert sketches == {name for name, _, _ in added} and not pairs.sketched[:-2].any(), step
        both = np.isin(pairs.a, [len(pairs.sketched) - 2]) & np.isin(pairs.b, [len(pairs.sketched) - 1])
        assert both.sum() == 1, step  # listed, on its score alone...
        np.testing.assert_allclose(pairs.judged[both], pairs.score[both], atol=1e-6)
    bank = load_bank(settings.features_dir)  # ...where unflagged, its lead would count
    unflagged = find_duplicates(bank.front, bank.back, duplicate_thresholds_in(bank.manifest),
                                10**9)
    led = (unflagged.a == len(bank) - 2) & (unflagged.b == len(bank) - 1)
    assert unflagged.judged[led] > pairs.judged[both] + 0.01
    printed = subprocess.run([sys.executable, "-m", "worker.cli.duplicates", "--min-verdict",
                              "similar"], env=service_env(settings), capture_output=True,
                             text=True, timeout=60)
    names = ", ".join(name for name, _, _ in added)
    assert f"drawn as line sketches, judged without their lead: {names}" in printed.stdout
    left = remove_design(settings, added[0][0])  # the share follows the edit
    assert left["sketch_share"] == round(2 / (2 * len(left["names"])), 3)
