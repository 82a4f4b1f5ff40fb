"""The web server's settings, in one place: `make run` (worker/cli/supervisor.py), docker
compose and the load tests all start `gunicorn -c gunicorn.conf.py 'web:create_app()'`.

gevent workers: a long poll (`?wait=`, a Redis pub/sub wait) or a client that goes silent
mid-upload holds a greenlet (memory), not one of a handful of threads, so hundreds of them
leave every route answering. gunicorn's gevent worker monkey-patches socket, ssl, threading
and time when a process starts, before it imports the app (no `preload_app`), so redis-py's
sockets cooperate. This file imports nothing but the settings (no redis, no Flask) so that
nothing network-related but gunicorn's own is imported before the patch (redis-py's asyncio
module, once imported here, stayed unpatched; tests/test_serving.py).

The knobs are settings (worker/core/settings.py, README): WEB_WORKERS, WEB_CONNECTIONS,
MAX_LONG_POLLS (read by the app), CLIENT_TIMEOUT. `--bind` chooses the address.
"""

import json
import resource

import gevent
from gunicorn import util
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from worker.core.settings import InvalidSetting, Settings

try:
    _settings = Settings.from_env()
except InvalidSetting as exc:  # gunicorn prints any other error as a config file's traceback
    raise SystemExit(f"gunicorn: {exc}") from None

# a process holds up to WEB_CONNECTIONS client sockets and MAX_LONG_POLLS + 100 Redis ones
_files = _settings.web_connections + _settings.max_long_polls + 200
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft != resource.RLIM_INFINITY and _soft < _files:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_files if _hard == resource.RLIM_INFINITY
                                                else min(_files, _hard), _hard))


# gunicorn's own refusals, before the app sees the request, in words a person understands
_REFUSALS = {
    400: "the request is not valid HTTP",
    414: "the request's URL is too long: the request line's limit is {line} bytes",
    431: "the request's headers are too large: at most {fields} fields of {size} bytes each",
}


def write_json_error(sock, status_int, reason, mesg):
    """What gunicorn answers for a request it refuses itself (a URL over limit_request_line:
    414, headers over their limits: 431, a request line that is not HTTP: 400), in the API's
    {"error", "message"} shape instead of gunicorn's HTML page."""
    message = _REFUSALS.get(status_int, reason.lower()).format(
        line=limit_request_line, fields=limit_request_fields, size=limit_request_field_size)
    body = json.dumps({"error": reason.lower().replace(" ", "_"), "message": message}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "X-Content-Type-Options: nosniff\r\nCache-Control: private, no-store\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


util.write_error = write_json_error  # the worker's handle_error sends every such refusal through it


class ClientTimeoutWorker(GeventWorker):
    """gunicorn's gevent worker whose client sockets time out: a client silent for
    CLIENT_TIMEOUT s while its request head or body is read (or while a response is sent) is
    dropped, instead of holding its connection for as long as it likes."""

    def handle(self, listener, client, addr):
        client.settimeout(_settings.client_timeout)  # GeventWorker.handle would block forever
        AsyncWorker.handle(self, listener, client, addr)

    def handle_quit(self, sig, frame):
        """SIGINT/SIGQUIT (Ctrl-C reaches every process `make run` started): stop as on SIGTERM
        (requests in flight get `graceful_timeout`), not by a SystemExit that gevent prints."""
        self.alive = False

    def timeout_ctx(self):
        """The wait for a request head (and the rest of an unread body): `keepalive`, and
        never past the socket's timeout, so a silent client is dropped quietly (no traceback)."""
        return gevent.Timeout(min(self.cfg.keepalive, _settings.client_timeout), False)


workers = _settings.web_workers
worker_class = ClientTimeoutWorker
worker_connections = _settings.web_connections  # per process; past it, connections wait in backlog
preload_app = False  # each process imports the app after gevent's monkey-patching
timeout = 30  # a process whose event loop is stuck this long is restarted
graceful_timeout = 10  # on stop, requests in flight (long polls too) get this long
keepalive = 5  # s an idle connection, or a new one, has to send its next request head
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
accesslog = "-"
control_socket_disable = True  # gunicorn >= 25: no shared ~/.gunicorn/gunicorn.ctl between servers
