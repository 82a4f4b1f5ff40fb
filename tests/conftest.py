"""Fixtures: a real redis-server on a free port, a real app from the factory, a small real
catalogue indexed by one shared VGG16 (bsds500 weights, offline), real workers in burst mode."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

import pytest
from redis import Redis

from tests.background_indexes import SUITE_PRECISION, BackgroundIndexes, last, wanted
from tests.images import N_PAIRS
from worker.core.settings import DEFAULT_DESCRIPTOR, Settings
from worker.dev.processes import free_port, start_redis
from worker.dev.sample import write_catalogue


def pytest_collection_modifyitems(items):
    last(items)  # the module whose indexes build in the background meanwhile


@pytest.fixture(scope="session", autouse=True)
def background_indexes(request, tmp_path_factory):
    """Started with the session when tests/test_near_duplicates.py is to run."""
    if not wanted(request.session.items):
        yield None
        return
    builds = BackgroundIndexes(tmp_path_factory.mktemp("background"))
    yield builds
    builds.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis(redis_url) -> Redis:
    client = Redis.from_url(redis_url)
    client.flushdb()
    return client


@pytest.fixture(scope="session")
def catalogue_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("database")
    write_catalogue(root, N_PAIRS, seed=7)
    return root


@pytest.fixture(scope="session")
def extractor():
    """The one VGG16 the slow tests share (offline weights)."""
    from worker.pipeline.extract import FeatureExtractor

    fe = FeatureExtractor("bsds500", DEFAULT_DESCRIPTOR)
    fe.warm_up()
    return fe


@pytest.fixture(scope="session")
def features_dir(tmp_path_factory, catalogue_dir, extractor) -> Path:
    from worker.indexing.build import build_index

    root = tmp_path_factory.mktemp("features")
    build_index(Settings(database_dir=catalogue_dir, features_dir=root), extractor,
                progress=False)
    return root


@pytest.fixture
def settings(tmp_path, redis_url, catalogue_dir) -> Settings:
    """Fresh upload/output folders and queue per test; the session catalogue and banks
    (features_dir is filled in by the `indexed_settings` fixture)."""
    return Settings(redis_url=redis_url, database_dir=catalogue_dir,
                    features_dir=tmp_path / "features", upload_dir=tmp_path / "uploads",
                    output_dir=tmp_path / "output", vgg16_weights="bsds500",
                    queue_name=f"test-{uuid.uuid4().hex[:8]}", require_worker=False,
                    precision=SUITE_PRECISION)


@pytest.fixture
def indexed_settings(settings, features_dir, tmp_path) -> Settings:
    """Settings whose FEATURES_DIR is a private copy of the session's banks."""
    private = tmp_path / "features"
    shutil.copytree(features_dir, private)
    return dataclasses.replace(settings, features_dir=private)


def _app(settings):
    from web import create_app

    return create_app({"SETTINGS": settings, "TESTING": True})


@pytest.fixture
def app(settings, redis):
    """The app from its factory, with no index."""
    return _app(settings)


@pytest.fixture
def indexed_app(indexed_settings, redis):
    """The app from its factory, with a private copy of the session's banks."""
    return _app(indexed_settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def indexed_client(indexed_app):
    return indexed_app.test_client()


@pytest.fixture
def run_worker(indexed_settings, extractor, redis):
    """Run a real SearchWorker in burst mode in this process (shared model), with the test's
    indexed settings or others given."""
    from worker.service.process import make_worker, start_engine

    def run(settings=None) -> None:
        settings = settings or indexed_settings
        engine = start_engine(settings, extractor)
        make_worker(settings, engine, redis).work(burst=True, with_scheduler=False)

    return run
