"""The web process: validates and stores uploads, enqueues searches, reports on them.

It never imports TensorFlow: jobs are enqueued by their dotted name.
"""

from __future__ import annotations

from flask import Flask
from redis import BlockingConnectionPool, Redis
from rq import Queue

from web.catalogue import thumb_url
from web.longpolls import LongPolls
from web.pacing import InPieces
from web.submissions import FormRequest
from worker.core.settings import REPO_ROOT, Settings
from worker.core.storage import open_storage

REDIS_CONNECTIONS_SPARE = 100  # Redis connections a web process keeps for all but long polls


def create_app(test_config: dict | None = None) -> Flask:
    """Application factory. `test_config` may carry a ready `SETTINGS` object."""
    app = Flask(__name__, template_folder=str(REPO_ROOT / "templates"))
    app.request_class = FormRequest
    config = dict(test_config or {})
    settings: Settings = config.pop("SETTINGS", None) or Settings.from_env()
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_upload_bytes, **config)

    # a long poll holds a pub/sub connection for its wait: room for MAX_LONG_POLLS of them and
    # the other requests' short commands; past that a command waits for a free one (5 s)
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.max_long_polls + REDIS_CONNECTIONS_SPARE,
        timeout=5.0, socket_connect_timeout=1.0, socket_timeout=5.0)
    redis = Redis(connection_pool=pool)
    app.extensions["redis"] = redis
    app.extensions["queue"] = Queue(settings.queue_name, connection=redis)
    app.extensions["check_queue"] = Queue(settings.check_queue_name, connection=redis)
    app.extensions["match_queue"] = Queue(settings.match_queue_name, connection=redis)
    app.extensions["storage"] = storage = open_storage(settings, redis)
    storage.setup()
    app.extensions["long_polls"] = LongPolls(settings.max_long_polls)

    from web import api, browse, checks, designs, duplicates, errors, headers, matches, ops, pages

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(designs.bp)
    app.register_blueprint(matches.bp)
    app.register_blueprint(browse.bp)
    app.register_blueprint(checks.bp)
    app.register_blueprint(duplicates.bp)
    app.jinja_env.globals["thumb_url"] = thumb_url  # the pages' thumbnails of hits
    errors.register(app)
    headers.register(app)
    app.wsgi_app = InPieces(app.wsgi_app, settings.min_upload_kbps * 1024,  # a slow reader is
                            settings.client_timeout)  # not cut off, a trickled body is

    return app
