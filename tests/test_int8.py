"""PRECISION=int8: the layers quantised at index time, stored with the generation, and used
by every worker that searches it (one int8 model, a small index)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair
from worker.core.bank import QUANTISED_MODEL, BankError, file_sha256, load_bank
from worker.core.catalogue import load_catalogue
from worker.core.generations import current_dir
from worker.core.settings import DEFAULT_DESCRIPTOR, Settings

pytestmark = pytest.mark.slow
MIN_COSINE = 0.998  # int8 against float32 descriptors of the same canvas, every canvas


@pytest.fixture(scope="module")
def int8_extractor():
    from worker.pipeline.extract import FeatureExtractor

    return FeatureExtractor("bsds500", DEFAULT_DESCRIPTOR, "int8")


@pytest.fixture(scope="module")
def int8_features_dir(tmp_path_factory, catalogue_dir, int8_extractor):
    from worker.indexing.build import build_index

    root = tmp_path_factory.mktemp("features-int8")
    build_index(Settings(database_dir=catalogue_dir, features_dir=root), int8_extractor,
                progress=False)
    return root


@pytest.fixture
def int8_settings(settings, int8_features_dir, tmp_path):
    private = tmp_path / "features-int8"  # beside indexed_settings' "features"
    shutil.copytree(int8_features_dir, private)
    return dataclasses.replace(settings, features_dir=private, precision="int8")


def catalogue_canvases(catalogue_dir) -> np.ndarray:
    from worker.pipeline.preprocess import make_canvas

    cat = load_catalogue(catalogue_dir)
    return np.stack([make_canvas(cat.image_path(p), trim=True)
                     for p in dict.fromkeys([*cat.fronts, *cat.backs])])


def test_int8_descriptors_are_close_to_the_float_ones(int8_extractor, int8_features_dir,
                                                      extractor, catalogue_dir):
    canvases = catalogue_canvases(catalogue_dir)[1::3]
    model = 256 + 512 + 512  # the model's columns (the appearance ones do not use it)
    float_rows = extractor.extract(canvases)[:, :model]
    int8_rows = int8_extractor.extract(canvases)[:, :model]
    cosines = np.sum(float_rows * int8_rows, axis=1)
    assert len(cosines) >= 15 and cosines.min() >= MIN_COSINE, cosines.min()
    assert not np.array_equal(float_rows, int8_rows), "int8 really ran"
    # each image is quantised by its own range: a search's batch of 2 gives the rows the
    # index's batches gave
    alone = np.vstack([int8_extractor.extract(canvases[i:i + 1])[:, :model] for i in (0, 5)])
    np.testing.assert_allclose(alone, int8_rows[[0, 5]], rtol=1e-5, atol=1e-7)  # float pooling


def test_an_int8_index_holds_its_model_fingerprinted(int8_features_dir, int8_extractor):
    folder = current_dir(int8_features_dir)
    m = load_bank(int8_features_dir).manifest
    assert m["precision"] == "int8" and m["precision_reason"] == "PRECISION=int8"
    assert m["sha256"]["quantised_model"] == file_sha256(folder / QUANTISED_MODEL)
    assert m["quantised_model"]["sha256"] == int8_extractor.model_id
    assert m["quantised_model"]["layers"] == ["block3_conv3", "block4_conv3", "block5_conv3"]
    assert "each image's own range" in m["quantised_model"]["activations"]
    # int8 weights, float activations (quantised per image by the kernels at run time): the
    # only int8 tensors are the 13 convolutions' weights up to block5_conv3
    from ai_edge_litert.interpreter import Interpreter

    dtypes = [t["dtype"] for t in Interpreter(
        model_content=(folder / QUANTISED_MODEL).read_bytes()).get_tensor_details()]
    assert dtypes.count(np.int8) == 13 and np.float32 in dtypes, dtypes


def test_an_int8_model_this_litert_cannot_read_is_the_index_s_error():
    """A model whose checksum matches but that this LiteRT cannot load (a newer converter on
    the machine that built it): the worker ended in a LiteRT traceback, not "cannot start"."""
    from worker.pipeline.quantise import QuantisedModel

    with pytest.raises(BankError, match="int8 model cannot be loaded by this worker's LiteRT"):
        QuantisedModel(b"not a flatbuffer" * 64)


def test_an_int8_worker_searches_with_the_index_model(int8_settings, int8_extractor, redis):
    from web import create_app
    from worker.service.process import make_worker, start_engine

    int8_extractor.quantised = None  # a worker that has no model yet takes the index's
    client = create_app({"SETTINGS": int8_settings, "TESTING": True}).test_client()
    url = post_pair(client, *design_pair(5, N_PAIRS)).get_json()["url"]
    engine = start_engine(int8_settings, int8_extractor)
    assert int8_extractor.model_id == load_bank(int8_settings.features_dir).manifest[
        "sha256"]["quantised_model"]
    make_worker(int8_settings, engine, redis).work(burst=True, with_scheduler=False)
    result = client.get(url).get_json()
    assert result["status"] == "finished", result
    assert result["results"][0]["name"] == "dress-0005"
    assert result["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert client.get("/healthz").get_json()["precision"] == "int8"


def test_a_bank_built_at_one_precision_is_refused_by_a_worker_at_another(
        int8_settings, indexed_settings, int8_extractor, extractor):
    from worker.service.engine import Engine

    with pytest.raises(BankError, match="built at precision int8 but this worker runs "
                                        "float32.*set PRECISION=int8"):
        Engine(int8_settings, extractor)
    with pytest.raises(BankError, match="built at precision float32 but this worker runs "
                                        "int8.*set PRECISION=float32"):
        Engine(dataclasses.replace(indexed_settings, precision="int8"), int8_extractor)
    model = current_dir(int8_settings.features_dir) / QUANTISED_MODEL
    model.write_bytes(model.read_bytes()[:-1] + b"\0")  # one byte changed
    with pytest.raises(BankError, match=f"{QUANTISED_MODEL} is missing or does not match"):
        Engine(int8_settings, int8_extractor)
    # and `index --if-needed` (compose's catalogue job) builds it again: it said "nothing to
    # build", and compose restarted the refusing worker for ever
    from worker.cli.index import refused_by_worker
    from worker.core.bank import read_manifest

    assert refused_by_worker(int8_settings, read_manifest(int8_settings.features_dir)) == (
        f"the index's int8 model ({QUANTISED_MODEL}) is missing or does not match it")


def test_an_edit_keeps_the_index_int8_model(int8_settings, int8_extractor, tmp_path):
    from worker.indexing.edits import add_designs, remove_design

    before = load_bank(int8_settings.features_dir).manifest["sha256"]["quantised_model"]
    front, back = design_pair(3, N_PAIRS, seed=11)
    (tmp_path / "f.png").write_bytes(front)
    (tmp_path / "b.png").write_bytes(back)
    settings = dataclasses.replace(int8_settings, database_dir=tmp_path / "db")
    shutil.copytree(int8_settings.database_dir, settings.database_dir)
    added = add_designs(settings, int8_extractor, [("new-one", tmp_path / "f.png",
                                                    tmp_path / "b.png")])
    assert added["sha256"]["quantised_model"] == before and added["precision"] == "int8"
    bank = load_bank(settings.features_dir)
    assert bank.quantised is not None and len(bank) == N_PAIRS + 1
    removed = remove_design(settings, "new-one")
    assert removed["sha256"]["quantised_model"] == before


def test_a_distributed_int8_build_runs_its_own_model_on_the_workers(
        tmp_path, redis_url, catalogue_dir, int8_extractor, int8_features_dir):
    """The first int8 build on several machines: a `--chunks-only` worker at int8 has no
    model; the build publishes the one it quantised beside the chunks, the worker runs it,
    and the bank is the local int8 build's."""
    import uuid

    from tests.test_index_distributed import CHUNK_PAIRS, build_on_chunks_only_worker
    from tests.test_index_resume import assert_same_banks
    from worker.indexing.chunkcache import PUBLISHED_MODEL

    settings = Settings(redis_url=redis_url, database_dir=catalogue_dir,
                        features_dir=tmp_path / "features", upload_dir=tmp_path / "uploads",
                        output_dir=tmp_path / "output", vgg16_weights="bsds500",
                        precision="int8", queue_name=f"int8-{uuid.uuid4().hex[:8]}",
                        index_chunk_pairs=CHUNK_PAIRS)
    manifest = build_on_chunks_only_worker(settings, int8_extractor, tmp_path / "worker.log")
    built, local = (load_bank(f).manifest for f in (settings.features_dir, int8_features_dir))
    assert built["precision"] == "int8"
    assert built["sha256"]["quantised_model"] == local["sha256"]["quantised_model"]
    published = settings.features_dir / "chunks" / manifest["images"]["model"] / PUBLISHED_MODEL
    assert file_sha256(published) == built["sha256"]["quantised_model"]
    assert_same_banks(settings.features_dir, int8_features_dir)


def test_a_worker_runs_a_published_model_only_for_the_chunks_it_makes(
        int8_extractor, int8_features_dir, extractor, tmp_path):
    import copy
    import hashlib

    from worker.indexing.chunks import ChunkCache, model_fingerprint
    from worker.service.chunks import ChunkRefused, extractor_for

    blob = (current_dir(int8_features_dir) / QUANTISED_MODEL).read_bytes()
    worker = copy.copy(int8_extractor)
    worker.quantised = None  # a `--chunks-only` worker: no index, no model
    theirs = model_fingerprint(worker.with_quantised(blob))
    cache = ChunkCache(tmp_path, theirs)
    with pytest.raises(ChunkRefused, match=f"is for model {theirs}"):  # nothing published
        extractor_for(worker, "k", cache)
    cache.publish_model(blob)
    running = extractor_for(worker, "k", cache)
    assert running.model_id == hashlib.sha256(blob).hexdigest()
    assert worker.quantised is None  # the model it searches with is left alone
    with pytest.raises(ChunkRefused, match="precision float32"):  # a float worker: never
        extractor_for(extractor, "k", cache)
    other = ChunkCache(tmp_path, "0" * 16)  # a model this blob does not make
    other.publish_model(blob)
    with pytest.raises(ChunkRefused, match="is for model 0000000000000000"):
        extractor_for(worker, "k", other)


def test_a_worker_keeps_the_published_model_while_chunks_wait_then_frees_it(
        int8_extractor, int8_features_dir, tmp_path, redis_url):
    import copy
    import uuid

    from redis import Redis
    from rq import Queue

    from worker.indexing.chunks import ChunkCache, model_fingerprint
    from worker.service import chunks

    blob = (current_dir(int8_features_dir) / QUANTISED_MODEL).read_bytes()
    worker = copy.copy(int8_extractor)
    worker.quantised = None
    cache = ChunkCache(tmp_path, model_fingerprint(worker.with_quantised(blob)))
    cache.publish_model(blob)
    queue = Queue(f"chunks-{uuid.uuid4().hex[:8]}", connection=Redis.from_url(redis_url))
    done, waiting = (queue.enqueue("builtins.len", []) for _ in range(2))
    running = chunks.extractor_for(worker, "k", cache)
    queue.remove(done)  # the first chunk taken; the second still waits
    chunks.release_when_idle(done)
    assert chunks.extractor_for(worker, "k", cache) is running  # one interpreter for the build
    queue.remove(waiting)
    chunks.release_when_idle(waiting)  # the last chunk done: nothing waits
    assert chunks._published is None
    assert chunks.extractor_for(worker, "k", cache) is not running  # made again if needed
    chunks.release_when_idle(None)  # called outside a queue job: freed too
    assert chunks._published is None
    running = chunks.extractor_for(worker, "k", cache)  # a chunk ends while another waits ...
    waiting = queue.enqueue("builtins.len", [])
    chunks.release_when_idle(done)
    assert chunks.extractor_for(worker, "k", cache) is running
    queue.remove(waiting)  # ... taken by another worker: this one's maintenance frees it
    chunks.release_if_no_chunks(queue.connection, queue.name)
    assert chunks._published is None
