"""The model, its offline weights and the index build (one shared VGG16)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from worker.cli.index import main as index_main
from worker.core.bank import load_bank
from worker.core.catalogue import load_catalogue
from worker.core.generations import current_dir
from worker.core.settings import DEFAULT_DESCRIPTOR, Settings
from worker.indexing.build import UnreadableImages, build_index
from worker.pipeline.appearance import BLOCKS, PATTERN_DIMS, PROPORTION_DIMS
from worker.pipeline.exact import CHOSEN
from worker.pipeline.preprocess import make_canvas
from worker.pipeline.verdicts import CALIBRATED
from worker.pipeline.weights import VGG16_CONV_LAYERS, bsds500_path, resolve_weights

pytestmark = pytest.mark.slow


def test_bsds500_weights_are_the_conv_layers(extractor):
    vgg = extractor.model
    with h5py.File(bsds500_path()) as f:
        for layer_name, group in VGG16_CONV_LAYERS:
            kernel, bias = vgg.get_layer(layer_name).get_weights()
            np.testing.assert_array_equal(kernel, f[f"{group}/0"][()])
            np.testing.assert_array_equal(bias, f[f"{group}/1"][()])
    assert len(VGG16_CONV_LAYERS) == 13
    assert extractor.weights_id == "bsds500" and len(extractor.weights_fingerprint) == 16


def test_auto_falls_back_to_bsds500_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setattr("worker.pipeline.weights._imagenet_reachable", lambda timeout=2.0: False)
    assert resolve_weights("auto").id == "bsds500"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    assert resolve_weights("auto").id == "imagenet"


def test_unknown_weights_setting_is_explained():
    with pytest.raises(RuntimeError, match="neither imagenet, bsds500, random"):
        resolve_weights("/no/such/file.h5")


def test_building_and_running_the_model_writes_no_file(tmp_path, monkeypatch):
    """AutoGraph turns a traced function into generated source files in the temp folder, six
    left at every worker start; the pooling is traced without it."""
    import tempfile

    from worker.pipeline.extract import FeatureExtractor

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    extractor = FeatureExtractor("bsds500", DEFAULT_DESCRIPTOR, "float32")
    extractor.extract(np.full((1, 224, 224, 3), 255, dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_descriptor_rows_are_unit_and_deterministic(extractor, catalogue_dir):
    cat = load_catalogue(catalogue_dir)
    canvases = np.stack([make_canvas(cat.image_path(p)) for p in cat.fronts[:3]])
    a, b = extractor.extract(canvases), extractor.extract(canvases)
    model = 256 + 512 + 512  # GeM of block3, block4, block5; then the appearance columns
    assert a.shape == (3, extractor.dim) and a.dtype == np.float32
    # silhouette, colours, pattern, proportions
    assert extractor.dim == model + sum(BLOCKS) + PATTERN_DIMS + PROPORTION_DIMS
    np.testing.assert_allclose(np.linalg.norm(a[:, :model], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert (a[0, :model] @ a[1, :model]) < 0.999, "different drawings give different descriptors"


def test_index_rows_follow_pairs_csv(features_dir, catalogue_dir, extractor):
    bank = load_bank(features_dir)
    cat = load_catalogue(catalogue_dir)
    m = bank.manifest
    distinct = len(set(cat.fronts) | set(cat.backs))
    assert len(bank) == len(cat) and m["names"] == cat.names
    assert m["dim"] == distinct - 1 + sum(BLOCKS) + PATTERN_DIMS + PROPORTION_DIMS, \
        "whitened to at most n - 1 dims"
    assert m["raw_dim"] == extractor.dim
    assert m["descriptor"] == DEFAULT_DESCRIPTOR and m["weights"]["id"] == "bsds500"
    assert m["verdicts"] == CALIBRATED[DEFAULT_DESCRIPTOR]
    # the bonus with its own thresholds; "verdicts" stay the plain score's (duplicates, old code)
    assert m["exact_match"] == CHOSEN[DEFAULT_DESCRIPTOR].to_manifest()
    assert m["whitening"]["dims"] == m["dim"] and m["preprocess"]["trim"] is True
    assert m["weights"]["fingerprint"] == extractor.weights_fingerprint
    assert m["weights"]["file"] == extractor.weights_file and len(extractor.weights_file) == 16
    assert m["preprocess"]["long_side"] == 200 and m["preprocess"]["canvas"] == 224
    for row in (0, 5, 23):
        q = bank.project(extractor.extract(
            np.stack([make_canvas(cat.image_path(cat.backs[row]), trim=True)])))[0]
        assert float(bank.back[row] @ q) == pytest.approx(1.0, abs=1e-4)


def test_unreadable_images_leave_old_banks_untouched(tmp_path, catalogue_dir, features_dir,
                                                     extractor):
    db = tmp_path / "db"
    shutil.copytree(catalogue_dir, db)
    feats = tmp_path / "features"
    shutil.copytree(features_dir, feats)
    before = (feats / "CURRENT").read_bytes(), (current_dir(feats) / "manifest.json").read_bytes()
    (db / "images" / "dress-0001_back.png").write_bytes(b"not a png")
    (db / "images" / "tshirt-0004_front.png").unlink()
    with pytest.raises(UnreadableImages) as info:
        build_index(Settings(database_dir=db, features_dir=feats), extractor, progress=False)
    reasons = dict(info.value.failures)
    assert set(reasons) == {"images/dress-0001_back.png", "images/tshirt-0004_front.png"}
    assert "JPEG or PNG" in reasons["images/dress-0001_back.png"]
    assert ((feats / "CURRENT").read_bytes(),
            (current_dir(feats) / "manifest.json").read_bytes()) == before


def test_index_command_exits_non_zero_and_lists_failures(tmp_path, catalogue_dir, monkeypatch,
                                                         capsys):
    db = tmp_path / "db"
    shutil.copytree(catalogue_dir, db)
    (db / "images" / "jacket-0002_front.png").write_bytes(b"")
    monkeypatch.setenv("DATABASE_DIR", str(db))
    monkeypatch.setenv("FEATURES_DIR", str(tmp_path / "features"))
    monkeypatch.setenv("VGG16_WEIGHTS", "bsds500")
    assert index_main([]) == 1
    err = capsys.readouterr().err
    assert "  images/jacket-0002_front.png (jacket-0002 front): " in err  # its design named
    assert "left untouched" in err
    assert not (tmp_path / "features" / "CURRENT").exists()


def test_index_writes_a_small_thumbnail_per_image(features_dir, catalogue_dir):
    from PIL import Image

    from worker.pipeline.thumbnails import thumbnail_path

    cat = load_catalogue(catalogue_dir)
    distinct = set(cat.fronts) | set(cat.backs)
    assert len(list((features_dir / "thumbs" / "150px").glob("*.jpg"))) == len(distinct)
    with Image.open(thumbnail_path(features_dir, cat.fronts[0])) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 150


def test_flatten_stays_selectable_as_the_seeds_descriptor():
    from worker.pipeline.extract import FeatureExtractor

    flatten = FeatureExtractor("bsds500", "flatten")
    rows = flatten.extract(np.full((2, 224, 224, 3), 200, dtype=np.uint8))
    assert flatten.dim == 25088 and rows.shape == (2, 25088) and not flatten.trim
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_rmac_regions_stay_inside_the_feature_map():
    from worker.pipeline.descriptors import rmac_regions

    assert len(rmac_regions(14)) == 1 + 4 + 9
    assert all(0 <= t and t + s <= 14 and 0 <= left and left + s <= 14
               for t, left, s in rmac_regions(14))
