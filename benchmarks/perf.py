"""Performance of the paired search: the search stage against bank sizes, and the service end to end.

`python -m benchmarks.perf sizes [--dim 1024] [--sizes 3000,30000,300000,1000000] [--queries 20]`
    Synthetic L2-normalised float32 banks (front and back); times
    `worker.pipeline.ranking.top_k(bank, qf, qb, 20, 0.5)` (and with sides_unknown) per query with
    float32 queries (what the extractor returns), brute force and coarse + exact
    (`worker.pipeline.ann`: index build time, memory, agreement of its top 20 with brute force on
    random and on clustered banks). A size whose estimated cost exceeds `--budget-s` is skipped.

`python -m benchmarks.perf e2e [--pairs 3000] [--searches 50] [--concurrent 100] [--workers 1,2]
[--descriptor D] [--weights bsds500] [--precision auto]`
    In a temporary directory: redis-server on a free port, a sample catalogue, the index built
    by `python -m worker.cli.index` (wall time, images/s, peak RSS), gunicorn + one `python -m
    worker` (start-up time to the first finished search), sequential searches over HTTP (per
    stage p50/p95), process RSS, then bursts of concurrent searches with 1, 2... workers.

Every subcommand prints its command line and key settings, then markdown tables.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worker.core.bank import FeatureBank, read_manifest
from worker.core.catalogue import load_catalogue
from worker.core.settings import REPO_ROOT, Settings
from worker.dev.processes import stop_process
from worker.pipeline.ann import MIN_CANDIDATES, with_coarse_index
from worker.pipeline.ranking import top_k

K = 20
FRONT_WEIGHT = 0.5
MIB = 1024 * 1024


# --- output -----------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(text: str = "") -> None:
    print(text, flush=True)


def preamble(title: str, argv: Sequence[str], settings: dict[str, object]) -> None:
    emit(f"## {title}\n")
    emit(f"`python -m benchmarks.perf {shlex.join(argv)}`\n")
    host = {"python": platform.python_version(), "numpy": np.__version__,
            "cpus": os.cpu_count(), "machine": platform.machine(),
            "load average (1/5 min) at start": " / ".join(f"{x:.2f}" for x in os.getloadavg()[:2])}
    for key, value in {**host, **settings}.items():
        emit(f"- {key}: {value}")
    emit()


def ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


# --- sizes: the search stage alone ------------------------------------------------------------

CLUSTER = 20  # pairs per "design family" in the clustered banks
FAMILY_COS = (0.6, 0.9)  # cosine of a clustered row to its family's centre
QUERY_COS = (0.8, 0.95)  # cosine of a near-duplicate query to the row it copies


def unit_rows(rng: np.random.Generator, n: int, dim: int,
              chunk: int = 16384) -> np.ndarray:
    """(n, dim) random float32 unit rows, generated chunk-wise."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + block.shape[0]] = block
    return out


def synthetic_bank(rng: np.random.Generator, n: int, dim: int) -> FeatureBank:
    return FeatureBank(unit_rows(rng, n, dim), unit_rows(rng, n, dim), manifest={})


def noisy_copies(rng: np.random.Generator, rows: np.ndarray, cos: tuple[float, float]) -> np.ndarray:
    """(m, dim) unit rows -> unit rows at a cosine drawn uniformly from `cos` (approximately:
    isotropic noise of norm sqrt(1/c^2 - 1) added, then normalised)."""
    m, dim = rows.shape
    c = rng.uniform(*cos, size=(m, 1)).astype(np.float32)
    sigma = np.sqrt((1.0 / c**2 - 1.0) / dim)
    out = rows + sigma * rng.standard_normal((m, dim), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def clustered_rows(rng: np.random.Generator, n: int, dim: int, chunk: int = 16384) -> np.ndarray:
    """(n, dim) float32 unit rows in families of CLUSTER consecutive rows around random centres."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        first, last = start // CLUSTER, (stop - 1) // CLUSTER
        centres = unit_rows(rng, last - first + 1, dim)
        out[start:stop] = noisy_copies(rng, centres[np.arange(start, stop) // CLUSTER - first],
                                       FAMILY_COS)
    return out


def clustered_bank(rng: np.random.Generator, n: int, dim: int) -> FeatureBank:
    """Front and back families share rows (a family is a group of related designs)."""
    return FeatureBank(clustered_rows(rng, n, dim), clustered_rows(rng, n, dim), manifest={})


def near_duplicate_queries(rng: np.random.Generator, bank: FeatureBank, count: int) -> np.ndarray:
    """(count, 2, dim): noisy copies of the front and back of random pairs of `bank`."""
    rows = rng.integers(len(bank), size=count)
    return np.stack([noisy_copies(rng, np.asarray(bank.front[rows]), QUERY_COS),
                     noisy_copies(rng, np.asarray(bank.back[rows]), QUERY_COS)], axis=1)


def time_search(bank: FeatureBank, queries: np.ndarray,
                sides_unknown: bool = False) -> tuple[list[float], list[list[int]]]:
    """(ms per `top_k` call, the hits' rows per call), one call per pair of query rows."""
    times, hits = [], []
    for q_front, q_back in queries:
        start = time.perf_counter()
        found = top_k(bank, q_front, q_back, K, FRONT_WEIGHT, sides_unknown)
        times.append((time.perf_counter() - start) * 1000)
        hits.append([hit.index for hit in found])
    return times, hits


def agreement(exact: Sequence[Sequence[int]], approx: Sequence[Sequence[int]]) -> float | None:
    """Fraction of the exact top K found in the approximate top K, averaged over queries."""
    shares = [len(set(e) & set(a)) / len(e) for e, a in zip(exact, approx, strict=True) if e]
    return float(np.mean(shares)) if shares else None


def estimate_seconds(n: int, dim: int, n_queries: int,
                     rng: np.random.Generator, probe_rows: int = 20000) -> tuple[float, float]:
    """(estimated seconds for the warm-up call + the timed queries, estimated ms per query),
    from a probe bank of at most `probe_rows` pairs scaled linearly to `n`."""
    rows = min(n, probe_rows)
    probe = synthetic_bank(rng, rows, dim)
    query = unit_rows(rng, 2, dim)[None]
    time_search(probe, query)  # first call: page faults, allocator
    per_query_ms = float(np.median(time_search(probe, np.repeat(query, 3, axis=0))[0]))
    scale = n / rows
    return per_query_ms / 1000 * (n_queries + 1) * scale, per_query_ms * scale


@dataclass
class SizeResult:
    brute: list[object]  # a row of the brute-force table
    coarse: list[object]  # a row of the coarse + exact table


def size_rows(n: int, dim: int, n_queries: int, budget_s: float,
              rng: np.random.Generator) -> SizeResult:
    """Brute force and coarse + exact on one random bank of n pairs (timings, agreement on
    random queries), then agreement on a clustered bank with near-duplicate queries."""
    per_pair = 2 * dim * np.dtype(np.float32).itemsize
    head: list[object] = [f"{n:,}", dim, f"{per_pair:,}", fmt(n * per_pair / MIB)]
    est_s, est_ms = estimate_seconds(n, dim, 2 * n_queries, rng)  # straight + crossed
    if est_s > budget_s:
        note = f"skipped (est. {est_s:,.0f} s > {budget_s:.0f} s; ~{est_ms:,.0f} ms/query)"
        return SizeResult([*head, "-", "-", "-", "-", "-", note], [f"{n:,}", *["-"] * 9, note])
    start = time.perf_counter()
    bank = synthetic_bank(rng, n, dim)
    gen_s = time.perf_counter() - start
    queries = unit_rows(rng, 2 * (n_queries + 1), dim).reshape(-1, 2, dim)
    brute, brute_hits = time_search(bank, queries)
    brute_x, brute_x_hits = time_search(bank, queries, sides_unknown=True)
    start = time.perf_counter()
    indexed = with_coarse_index(bank, 0)
    index_s = time.perf_counter() - start
    index_bytes = indexed.coarse.nbytes
    ann, ann_hits = time_search(indexed, queries)
    ann_x, ann_x_hits = time_search(indexed, queries, sides_unknown=True)
    del bank, indexed
    # near-duplicate queries against families of related designs (what real queries look like)
    bank = clustered_bank(rng, n, dim)
    indexed = with_coarse_index(bank, 0)
    near = near_duplicate_queries(rng, bank, n_queries)
    near_hits, near_ann_hits = time_search(bank, near)[1], time_search(indexed, near)[1]
    near_x_hits = time_search(bank, near, sides_unknown=True)[1]
    near_ann_x_hits = time_search(indexed, near, sides_unknown=True)[1]
    del bank, indexed

    def ms(times: list[float], q: float) -> str:
        return fmt(percentile(times[1:], q), 2)  # the first call warms up

    def agree(exact: list[list[int]], approx: list[list[int]],
              exact_x: list[list[int]], approx_x: list[list[int]]) -> str:
        return f"{fmt(agreement(exact, approx), 3)} ({fmt(agreement(exact_x, approx_x), 3)})"

    p50 = percentile(brute[1:], 50)
    gb_s = n * per_pair / 1e9 / (p50 / 1000) if p50 else None
    note = f"{len(brute) - 1} queries"
    total_per_pair = per_pair + index_bytes / n
    return SizeResult(
        [*head, fmt(gen_s, 2), ms(brute, 50), ms(brute, 95), ms(brute_x, 50), fmt(gb_s, 2), note],
        [f"{n:,}", fmt(index_s, 2), fmt(index_bytes / MIB), f"{total_per_pair:,.0f}",
         ms(ann, 50), ms(ann, 95), ms(ann_x, 50),
         agree(brute_hits[1:], ann_hits[1:], brute_x_hits[1:], ann_x_hits[1:]),
         agree(near_hits, near_ann_hits, near_x_hits, near_ann_x_hits), note])


def cmd_sizes(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from worker.service.engine import WORKER_BLAS_THREADS, limit_blas_threads

    limit_blas_threads()  # as in the worker
    sizes = ints(args.sizes)
    preamble("Search stage vs bank size", argv, {
        "dim": args.dim, "sizes": sizes, "queries per size": args.queries,
        "k": K, "front_weight": FRONT_WEIGHT, "query dtype": "float32 (as the extractor returns)",
        "budget per size": f"{args.budget_s:.0f} s of brute-force searching, estimated from a "
                           "20k-pair probe (bank generation not counted)",
        "gen s": "time to generate the synthetic bank (not part of the service)",
        "BLAS threads": f"{WORKER_BLAS_THREADS} (as in the worker)",
        "banks": "synthetic random unit rows, front + back, float32 in RAM (not memory-mapped); "
                 "float16 banks were 10-15x slower with numpy and are not measured",
        "coarse + exact": f"worker.pipeline.ann.CoarseIndex (int8 [front | back] codes, faiss "
                          f"{faiss_version()}), best max(10 k, {MIN_CANDIDATES}) rows per query "
                          "vector re-scored exactly",
        "agreement": f"fraction of brute force's top {K} that coarse + exact returns, mean over "
                     "queries; in brackets: with sides_unknown. random: random unit queries on "
                     f"the random bank (near-ties: the worst case); clustered: families of "
                     f"{CLUSTER} pairs (cosine to centre {FAMILY_COS[0]}-{FAMILY_COS[1]}), "
                     f"queries are noisy copies of a pair (cosine {QUERY_COS[0]}-{QUERY_COS[1]})"})
    rng = np.random.default_rng(args.seed)
    results = []
    for n in sizes:
        results.append(size_rows(n, args.dim, args.queries, args.budget_s, rng))
        print(f"done: {n} pairs", file=sys.stderr, flush=True)
    emit("### Brute force (numpy, float32 banks)\n")
    emit(md_table(["pairs", "dim", "bytes/pair", "bank MiB", "gen s", "p50 ms", "p95 ms",
                   "p50 ms sides unknown", "GB/s at p50", "note"], [r.brute for r in results]))
    emit("\n### Coarse + exact (worker.pipeline.ann)\n")
    emit(md_table(["pairs", "index build s", "index MiB", "bytes/pair (banks + index)", "p50 ms",
                   "p95 ms", "p50 ms sides unknown", f"top-{K} agreement random",
                   f"top-{K} agreement clustered", "note"], [r.coarse for r in results]))
    return 0


def faiss_version() -> str:
    import faiss

    return faiss.__version__


# --- e2e: processes ---------------------------------------------------------------------------

def spawn(cmd: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(list(cmd), env=env, cwd=REPO_ROOT, stdout=out,
                                stderr=subprocess.STDOUT)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def proc_ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # fields after "(comm)": state, ppid, ...


def children(pid: int) -> list[int]:
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [child for child in pids if proc_ppid(child) == pid]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


def http_up(url: str) -> bool:
    import requests

    try:
        requests.get(url, timeout=10)
        return True
    except requests.RequestException:  # refused, or too slow while the model starts
        return False


@dataclass
class Service:
    """What one e2e run has started; `close` stops all of it."""

    tmp: Path
    env: dict[str, str]
    base: str
    redis_url: str
    queue_name: str
    logs: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    workers: list[subprocess.Popen] = field(default_factory=list)

    def queue(self):
        from redis import Redis
        from rq import Queue

        return Queue(self.queue_name, connection=Redis.from_url(self.redis_url))

    def worker_count(self) -> int:
        from rq import Worker

        return Worker.count(queue=self.queue())

    def start_worker(self) -> subprocess.Popen:
        log = self.logs / f"worker-{len(self.workers) + 1}.log"
        proc = spawn([sys.executable, "-m", "worker"], self.env, log)
        self.workers.append(proc)
        return proc

    def check_alive(self) -> None:
        for name, proc in [*self.procs.items(), *(("worker", w) for w in self.workers)]:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} (pid {proc.pid}) exited with {proc.returncode}")

    def close(self) -> None:
        for proc in self.workers:  # all warm shutdowns at once, then wait for each
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            stop_process(proc)
        for name in ("web", "redis"):
            if name in self.procs:
                stop_process(self.procs[name])


def service_env(tmp: Path, redis_url: str, args: argparse.Namespace) -> dict[str, str]:
    return {**os.environ, "DATABASE_DIR": str(tmp / "database"),
            "FEATURES_DIR": str(tmp / "features"), "UPLOAD_DIR": str(tmp / "uploads"),
            "OUTPUT_DIR": str(tmp / "output"), "REDIS_URL": redis_url,
            "VGG16_WEIGHTS": args.weights, "DESCRIPTOR": args.descriptor,
            "PRECISION": args.precision, "QUEUE_NAME": args.queue_name, "REQUIRE_WORKER": "1",
            "MAX_QUEUE_LENGTH": "1000", "STORAGE": args.storage,
            "BATCH_SIZE": str(args.batch_size)}


# --- e2e: catalogue, index and query images -------------------------------------------------

def catalogue_paths(database: Path) -> list[tuple[str, str]]:
    catalogue = load_catalogue(database)
    return list(zip(catalogue.fronts, catalogue.backs, strict=True))


@dataclass(frozen=True)
class IndexBuild:
    images: int
    wall_s: float
    build_s: float | None
    peak_rss_kb: int


def build_index(service: Service) -> IndexBuild:
    pairs = catalogue_paths(service.tmp / "database")
    images = len({p for pair in pairs for p in pair})
    log = service.logs / "index.log"
    start = time.perf_counter()
    with log.open("ab") as out:
        rc = subprocess.run([sys.executable, "-m", "worker.cli.index"], env=service.env, cwd=REPO_ROOT,
                            stdout=out, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    if rc != 0:
        raise RuntimeError(f"python -m worker.cli.index exited with {rc}:\n{tail(log)}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB on Linux
    manifest = read_manifest(service.tmp / "features")
    return IndexBuild(images, wall, manifest.get("build_seconds"), peak)


class QueryImages:
    """Catalogue drawings as PNG bytes, each with one pixel changed so no two searches (and
    no catalogue image) share bytes: the service's result cache never answers them."""

    def __init__(self, database: Path):
        self.database = database
        self.pairs = catalogue_paths(database)
        self.count = 0
        self._cache: dict[str, np.ndarray] = {}

    def _pixels(self, rel: str) -> np.ndarray:
        from PIL import Image

        if rel not in self._cache:
            with Image.open(self.database / rel) as img:
                self._cache[rel] = np.asarray(img.convert("RGB"))
        return self._cache[rel]

    @staticmethod
    def _png(pixels: np.ndarray) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        return buf.getvalue()

    def next(self) -> tuple[bytes, bytes]:
        i = self.count
        self.count += 1
        front_rel, back_rel = self.pairs[i % len(self.pairs)]
        front = self._pixels(front_rel).copy()
        h, w, _ = front.shape
        y, x = divmod(i % (h * w), w)
        front[y, x] ^= 0x55  # a different pixel per search
        return self._png(front), self._png(self._pixels(back_rel))


# --- e2e: searches over HTTP ------------------------------------------------------------------

@dataclass
class Submission:
    status: int
    search_id: str | None
    url: str | None
    start: float  # perf_counter at POST start
    post_ms: float
    error: str | None = None


def post_search(session, base: str, front: bytes, back: bytes) -> Submission:
    start = time.perf_counter()
    r = session.post(f"{base}/api/searches", timeout=60,
                     files={"front": ("front.png", front, "image/png"),
                            "back": ("back.png", back, "image/png")})
    post_ms = (time.perf_counter() - start) * 1000
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code == 202:
        return Submission(202, body["id"], body["url"], start, post_ms)
    return Submission(r.status_code, None, None, start, post_ms, body.get("error"))


def poll_http(session, base: str, url: str, timeout: float = 600) -> tuple[dict, float]:
    """Long-poll (`?wait=`) until finished or failed: (body, perf_counter when seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = session.get(f"{base}{url}?wait=30", timeout=60).json()
        if body.get("status") in ("finished", "failed"):
            return body, time.perf_counter()
    raise TimeoutError(f"{url} did not finish within {timeout:.0f} s")


@dataclass(frozen=True)
class StartUp:
    registered_s: float
    first_finished_s: float
    status: str


def worker_start_up(service: Service, images: QueryImages, timeout: float) -> StartUp:
    """Spawn one worker, submit a search at once (retrying while the web refuses it with 503
    no_worker, REQUIRE_WORKER=1) and poll it to the end."""
    import requests

    session = requests.Session()
    front, back = images.next()
    t0 = time.perf_counter()
    service.start_worker()
    sub = post_search(session, service.base, front, back)
    deadline = time.monotonic() + timeout

    def registered() -> bool:
        service.check_alive()
        return service.worker_count() >= 1

    while sub.status == 503 and sub.error == "no_worker" and time.monotonic() < deadline:
        wait_until(registered, timeout, "worker registered")
        sub = post_search(session, service.base, front, back)
    if sub.status != 202:
        raise RuntimeError(f"first search refused: {sub.status} {sub.error}")
    body, seen = poll_http(session, service.base, sub.url, timeout)
    return StartUp(sub.start - t0, seen - t0, body["status"])


@dataclass
class SequentialSample:
    post_ms: float
    e2e_ms: float
    status: str
    timings: dict[str, float]


def sequential_searches(service: Service, images: QueryImages, n: int,
                        timeout: float) -> list[SequentialSample]:
    import requests

    session = requests.Session()
    samples = []
    for _ in range(n):
        front, back = images.next()
        sub = post_search(session, service.base, front, back)
        if sub.status != 202:
            raise RuntimeError(f"sequential search refused: {sub.status} {sub.error}")
        body, seen = poll_http(session, service.base, sub.url, timeout)
        samples.append(SequentialSample(sub.post_ms, (seen - sub.start) * 1000, body["status"],
                                        body.get("timings") or {}))
    return samples


def stage_rows(samples: list[SequentialSample], model_ms: list[float]) -> list[list[object]]:
    done = [s for s in samples if s.status == "finished"]

    def row(label: str, values: list[float]) -> list[object]:
        return [label, len(values), fmt(percentile(values, 50)), fmt(percentile(values, 95))]

    def timing(key: str) -> list[float]:
        return [float(s.timings[key]) for s in done if s.timings.get(key) is not None]

    rows = [row("upload handling (POST request)", [s.post_ms for s in samples])]
    queue_wait = timing("queue_wait_ms")
    rows.append(row("queue wait (timings.queue_wait_ms)", queue_wait) if queue_wait
                else ["queue wait (timings.queue_wait_ms)", 0, "not reported", "not reported"])
    for stage in ("preprocess", "extract", "search", "render"):
        rows.append(row(stage, timing(f"{stage}_ms")))
        if stage == "extract":
            rows.append(row("  of which the forward pass (timings.forward_ms)",
                            timing("forward_ms")))
    rows.append(row("total job (timings.total_ms)", timing("total_ms")))
    rows.append(row("end-to-end (POST start -> finished seen, long poll ?wait=30)",
                    [s.e2e_ms for s in done]))
    overhead = [s.e2e_ms - float(s.timings["total_ms"]) for s in done if "total_ms" in s.timings]
    rows.append(row("end-to-end minus total job", overhead))
    beyond = [s.e2e_ms - float(s.timings["extract_ms"]) for s in done if "extract_ms" in s.timings]
    rows.append(row("end-to-end minus extract (the overhead beyond the forward pass)", beyond))
    share = [100 * (s.e2e_ms - float(s.timings["extract_ms"])) / float(s.timings["extract_ms"])
             for s in done if s.timings.get("extract_ms")]
    rows.append(["overhead / extract, % (per search)", len(share), fmt(percentile(share, 50)),
                 fmt(percentile(share, 95))])
    # the target: overhead beyond the search's own forward pass (alone in the queue: 2 images)
    own = [(s.e2e_ms, float(s.timings["forward_ms"])) for s in done
           if s.timings.get("forward_ms") and s.timings.get("batch_images") == 2]
    rows.append(row("end-to-end minus forward pass (the overhead beyond the model)",
                    [e2e - fwd for e2e, fwd in own]))
    rows.append(["overhead / forward pass, % (per search)", len(own),
                 fmt(percentile([100 * (e2e - fwd) / fwd for e2e, fwd in own], 50)),
                 fmt(percentile([100 * (e2e - fwd) / fwd for e2e, fwd in own], 95))])
    # and beyond the model alone, timed in this process right after with the service idle
    rows.append(row("model alone, a pair (batch of 2), right after in this process", model_ms))
    e2e_p50, model_p50 = percentile([s.e2e_ms for s in done], 50), percentile(model_ms, 50)
    if e2e_p50 is not None and model_p50:
        rows.append(["end-to-end p50 minus model-alone p50, ms (%)", len(done),
                     f"{fmt(e2e_p50 - model_p50)} ({fmt(100 * (e2e_p50 - model_p50) / model_p50)} %)",
                     ""])
    return rows


def rss_rows(service: Service) -> list[list[object]]:
    rows: list[list[object]] = []
    for i, proc in enumerate(service.workers, start=1):
        rows.append([f"worker {i}", proc.pid, fmt(rss_kb(proc.pid) / 1024)])
    web = service.procs["web"].pid
    web_pids = [web, *children(web)]
    rows.append([f"gunicorn (master + {len(web_pids) - 1} workers)", " ".join(map(str, web_pids)),
                 fmt(sum(rss_kb(pid) for pid in web_pids) / 1024)])
    redis = service.procs["redis"].pid
    rows.append(["redis-server", redis, fmt(rss_kb(redis) / 1024)])
    return rows


# --- e2e: concurrent bursts -------------------------------------------------------------------

def ensure_workers(service: Service, n: int, timeout: float) -> float:
    """Exactly `n` worker processes, all registered; returns the seconds it took."""
    start = time.perf_counter()
    while len(service.workers) > n:
        stop_process(service.workers.pop())
    while len(service.workers) < n:
        service.start_worker()

    def ready() -> bool:
        service.check_alive()
        return service.worker_count() == n

    wait_until(ready, timeout, f"{n} registered worker(s)", interval=0.2)
    return time.perf_counter() - start


TERMINAL = {"finished": "finished", "failed": "failed", "stopped": "failed", "canceled": "failed"}


def job_outcomes(connection, ids: list[str]) -> dict[str, str]:
    """search id -> "finished"/"failed" for those that ended: one pipelined HGET of each job's
    status (this client shares the cores with the service, so it reads as little as it can)."""
    from rq.job import Job

    with connection.pipeline(transaction=False) as pipe:
        for search_id in ids:
            pipe.hget(Job.key_for(search_id), "status")
        statuses = pipe.execute()
    ended = {}
    for search_id, status in zip(ids, statuses, strict=True):
        if status is None:  # expired or deleted: it will never finish
            ended[search_id] = "failed"
        elif outcome := TERMINAL.get(status.decode()):
            ended[search_id] = outcome
    return ended


@dataclass
class Burst:
    workers: int
    ready_s: float
    submissions: list[Submission] = field(default_factory=list)
    ended: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (outcome, seen)
    jobs: list[dict] = field(default_factory=list)  # finished searches: timings, start, end


def submit_all(service: Service, payloads: list[tuple[bytes, bytes]],
               threads: int) -> tuple[ThreadPoolExecutor, list[Future]]:
    import requests

    local = threading.local()

    def submit(payload: tuple[bytes, bytes]) -> Submission:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return post_search(local.session, service.base, *payload)

    pool = ThreadPoolExecutor(max_workers=threads)
    return pool, [pool.submit(submit, payload) for payload in payloads]


def run_burst(service: Service, images: QueryImages, workers: int, n: int, threads: int,
              timeout: float) -> Burst:
    """Submit `n` searches at once; see each end as the worker announces it (pub/sub, as the
    long poll does), with the statuses of those still pending re-read every second."""
    from redis import Redis

    from worker.core.queueing import DONE_CHANNEL

    burst = Burst(workers, ensure_workers(service, workers, timeout))
    payloads = [images.next() for _ in range(n)]
    connection = Redis.from_url(service.redis_url)
    pubsub = connection.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(DONE_CHANNEL + "*")  # before the first submission: no end is missed
    pool, futures = submit_all(service, payloads, threads)
    pending: dict[str, Submission] = {}
    announced: set[str] = set()  # ended, perhaps before its POST returned here
    deadline = time.monotonic() + timeout
    next_check = 0.0
    try:
        while futures or pending:
            for future in [f for f in futures if f.done()]:
                futures.remove(future)
                sub = future.result()
                burst.submissions.append(sub)
                if sub.search_id:
                    pending[sub.search_id] = sub
            message = pubsub.get_message(timeout=0.05)
            if message is not None:
                announced.add(message["channel"].decode().removeprefix(DONE_CHANNEL))
            ready = [i for i in pending if i in announced]
            if time.monotonic() >= next_check:  # an announcement missed: statuses as well
                ready, next_check = list(pending), time.monotonic() + 1.0
            if ready:
                seen = time.perf_counter()
                for search_id, outcome in job_outcomes(connection, ready).items():
                    burst.ended[search_id] = (outcome, seen)
                    pending.pop(search_id)
            if time.monotonic() > deadline:
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        pubsub.close()
    burst.jobs = finished_jobs(connection, [i for i, (o, _) in burst.ended.items()
                                            if o == "finished"])
    return burst


def finished_jobs(connection, ids: list[str]) -> list[dict]:
    """Each finished search's job timings and its start and end in the worker (s, epoch)."""
    from rq.job import Job

    jobs = []
    for job in Job.fetch_many(ids, connection=connection):
        if job is None or job.started_at is None or job.ended_at is None:
            continue
        jobs.append({"timings": (job.return_value() or {}).get("timings", {}),
                     "start": job.started_at.timestamp(), "end": job.ended_at.timestamp(),
                     "worker": job.worker_name})
    return jobs


def worker_time_row(burst: Burst) -> list[object]:
    """Where one worker's time went per finished search: inside the job function, by stage,
    and between jobs (RQ's bookkeeping and dequeueing: from one job's end to the next's start
    on the same worker)."""
    jobs = burst.jobs
    n = len(jobs)

    def mean(key: str) -> str:
        values = [float(j["timings"].get(key, 0.0)) for j in jobs]
        return fmt(sum(values) / n if n else None)

    gaps = []
    for worker in {j["worker"] for j in jobs}:
        mine = sorted((j for j in jobs if j["worker"] == worker), key=lambda j: j["start"])
        gaps += [(b["start"] - a["end"]) * 1000 for a, b in zip(mine, mine[1:], strict=False)]
    outside = [(j["end"] - j["start"]) * 1000 - float(j["timings"].get("total_ms", 0.0))
               for j in jobs]
    return [burst.workers, n, mean("preprocess_ms"), mean("extract_ms"), mean("search_ms"),
            mean("render_ms"), mean("total_ms"),
            fmt(sum(outside) / n if n else None), fmt(sum(gaps) / len(gaps) if gaps else None)]


def burst_row(burst: Burst) -> list[object]:
    subs = burst.submissions
    accepted = {s.search_id: s for s in subs if s.search_id}
    refused = Counter(f"{s.status} {s.error or ''}".strip() for s in subs if not s.search_id)
    outcomes = Counter(outcome for outcome, _ in burst.ended.values())
    first = min((s.start for s in subs), default=0.0)
    last = max((seen for _, seen in burst.ended.values()), default=first)
    wall = last - first
    latencies = [(seen - accepted[i].start) * 1000 for i, (outcome, seen) in burst.ended.items()
                 if outcome == "finished"]
    unfinished = len(accepted) - len(burst.ended)
    return [burst.workers, fmt(burst.ready_s), len(subs), len(accepted),
            ", ".join(f"{k} x{v}" for k, v in refused.items()) or "0",
            outcomes["finished"], outcomes["failed"] + unfinished, fmt(wall, 2),
            fmt(outcomes["finished"] / wall if wall > 0 else None, 2),
            fmt(percentile(latencies, 50), 0), fmt(percentile(latencies, 95), 0)]


# --- e2e: the whole run -----------------------------------------------------------------------

@contextmanager
def started_service(args: argparse.Namespace) -> Iterator[Service]:
    from worker.dev.processes import free_port, start_redis

    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="perf-e2e-") if args.keep else
                   stack.enter_context(tempfile.TemporaryDirectory(prefix="perf-e2e-")))
        logs = tmp / "logs"
        logs.mkdir()
        port = free_port()
        redis_url = f"redis://127.0.0.1:{port}/0"
        service = Service(tmp, service_env(tmp, redis_url, args), "", redis_url, args.queue_name,
                          logs)
        stack.callback(service.close)
        service.procs["redis"] = start_redis(port, tmp / "redis")
        try:
            yield service
        except BaseException:
            for log in sorted(logs.glob("*.log")):
                print(f"--- {log.name} (tail)\n{tail(log)}", file=sys.stderr)
            raise
        finally:
            if args.keep:
                emit(f"\nkept {tmp}")


def start_web(service: Service, timeout: float) -> None:
    from worker.dev.processes import free_port

    port = free_port()
    service.base = f"http://127.0.0.1:{port}"
    service.procs["web"] = spawn(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "8", "web:create_app()"], service.env, service.logs / "gunicorn.log")

    def up() -> bool:
        service.check_alive()
        return http_up(f"{service.base}/healthz")

    wait_until(up, timeout, "gunicorn answering /healthz", interval=0.2)


def index_settings(service: Service) -> dict[str, object]:
    m = read_manifest(service.tmp / "features")
    return {"pairs": m.get("n_pairs"), "dim": m.get("dim"), "descriptor": m.get("descriptor"),
            "weights": (m.get("weights") or {}).get("id"), "precision": m.get("precision")}


def report_index(build: IndexBuild, service: Service) -> None:
    emit("### Index build (`python -m worker.cli.index`, subprocess)\n")
    emit(md_table(
        ["images", "wall s", "build s (manifest)", "images/s (wall)", "images/s (build)",
         "peak RSS MiB"],
        [[build.images, fmt(build.wall_s, 2), fmt(build.build_s, 2),
          fmt(build.images / build.wall_s, 2),
          fmt(build.images / build.build_s if build.build_s else None, 2),
          fmt(build.peak_rss_kb / 1024)]]))
    emit(f"\nindex: {index_settings(service)}\n")


def cmd_e2e(args: argparse.Namespace, argv: Sequence[str]) -> int:
    worker_counts = ints(args.workers)
    preamble("Service end to end", argv, {
        "pairs": args.pairs, "sequential searches": args.searches,
        "concurrent searches": args.concurrent, "worker counts": worker_counts,
        "submit threads": args.threads, "descriptor": args.descriptor, "weights": args.weights,
        "precision (setting)": args.precision, "gunicorn": "--workers 2 --threads 8",
        "queries": "catalogue drawings, one pixel changed per search (no cache hits)"})
    import shutil

    from worker.dev.sample import write_catalogue

    with started_service(args) as service:
        if args.reuse:  # a catalogue + index kept by an earlier `--keep` run
            for part in ("database", "features"):
                shutil.copytree(Path(args.reuse) / part, service.tmp / part)
            emit(f"catalogue and index copied from {args.reuse} (index build not measured)\n")
            emit(f"index: {index_settings(service)}\n")
        else:
            start = time.perf_counter()
            write_catalogue(service.tmp / "database", args.pairs, seed=7)
            emit(f"catalogue: {args.pairs} pairs written in {time.perf_counter() - start:.1f} s\n")
            report_index(build_index(service), service)

        start_web(service, args.timeout)
        images = QueryImages(service.tmp / "database")
        startup = worker_start_up(service, images, args.timeout)
        emit("### Worker start-up (spawn -> first search)\n")
        emit(md_table(["spawn -> registered (first POST accepted) s",
                       "spawn -> first search finished s", "first search"],
                      [[fmt(startup.registered_s, 2), fmt(startup.first_finished_s, 2),
                        startup.status]]))

        samples = sequential_searches(service, images, args.searches, args.timeout)
        model_ms = model_alone_ms(args, images, args.searches)
        failed = sum(s.status != "finished" for s in samples)
        emit(f"\n### Sequential searches ({len(samples)}, {failed} failed), 1 worker\n")
        emit(md_table(["stage", "n", "p50 ms", "p95 ms"], stage_rows(samples, model_ms)))
        emit("\n### RSS after the sequential run (VmRSS)\n")
        emit(md_table(["process", "pid(s)", "RSS MiB"], rss_rows(service)))

        bursts = [run_burst(service, images, n, args.concurrent, args.threads, args.timeout)
                  for n in worker_counts]
        emit(f"\n### Concurrent bursts ({args.concurrent} searches from {args.threads} threads;"
             " each end seen from the worker's pub/sub announcement)\n")
        emit(md_table(["workers", "ready s", "submitted", "accepted", "refused", "finished",
                       "failed", "wall s", "searches/s", "p50 e2e ms", "p95 e2e ms"],
                      [burst_row(b) for b in bursts]))
        emit("\n### Worker time per finished search in the bursts (means, ms)\n")
        emit(md_table(["workers", "searches", "preprocess", "extract", "search", "render",
                       "job total", "RQ around the job (start -> end minus job total)",
                       "gap between jobs on a worker"], [worker_time_row(b) for b in bursts]))
    return 0


# --- model: the forward pass alone ----------------------------------------------------------

def time_extract(extractor, batches: Sequence[np.ndarray], calls: int) -> list[float]:
    """Seconds per `extractor.extract` call, cycling through `batches`, after two warm-ups."""
    extractor.extract(batches[0])
    extractor.extract(batches[0])
    times = []
    for i in range(calls):
        start = time.perf_counter()
        extractor.extract(batches[i % len(batches)])
        times.append(time.perf_counter() - start)
    return times


def model_alone_ms(args: argparse.Namespace, images: QueryImages, calls: int) -> list[float]:
    """The model alone on query pairs (batch of 2), in this process, with the service idle:
    the floor of a search, measured in the same run as the searches."""
    from worker.pipeline.extract import FeatureExtractor
    from worker.pipeline.preprocess import make_canvas

    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    pairs = [np.stack([make_canvas(side, trim=extractor.trim) for side in images.next()])
             for _ in range(8)]
    return [s * 1000 for s in time_extract(extractor, pairs, calls)]


def cmd_model(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """What the model itself does per batch size: the ceiling for index builds and searches."""
    from worker.pipeline.extract import FeatureExtractor

    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    preamble("The model alone (FeatureExtractor.extract: preprocess_input + VGG16 + pooling)",
             argv, {"descriptor": args.descriptor, "weights": args.weights,
                    "precision": extractor.precision, "input": "random 224x224 uint8 canvases",
                    "timing": "median over repeated calls after two warm-up calls"})
    rng = np.random.default_rng(0)
    rows = []
    for size in ints(args.batch_sizes):
        canvases = rng.integers(0, 256, (size, 224, 224, 3), dtype=np.uint8)
        times = time_extract(extractor, [canvases], max(3, args.repeats // size))
        batch_s = float(np.median(times))
        rows.append([size, len(times), fmt(batch_s * 1000), fmt(batch_s / size * 1000),
                     fmt(size / batch_s, 2), fmt(size / 2 / batch_s, 2)])
    emit(md_table(["batch (images)", "calls", "ms per batch", "ms per image", "images/s",
                   "pair searches/s (2 images each)"], rows))
    return 0


# --- command line -----------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sizes", help="top_k against synthetic banks of several sizes")
    s.add_argument("--dim", type=int, default=1024)
    s.add_argument("--sizes", default="3000,30000,300000,1000000")
    s.add_argument("--queries", type=int, default=20)
    s.add_argument("--budget-s", type=float, default=60.0,
                   help="skip a size estimated to take longer (default 60)")
    s.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("e2e", help="the whole service: index, start-up, searches, bursts")
    e.add_argument("--pairs", type=int, default=3000)
    e.add_argument("--searches", type=int, default=50)
    e.add_argument("--concurrent", type=int, default=100)
    e.add_argument("--workers", default="1,2")
    e.add_argument("--threads", type=int, default=25)
    e.add_argument("--descriptor", default=os.environ.get("DESCRIPTOR") or Settings().descriptor)
    e.add_argument("--weights", default="bsds500")
    e.add_argument("--precision", default="auto")
    e.add_argument("--queue-name", default="perf")
    e.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds any single wait may take (default 1800)")
    e.add_argument("--keep", action="store_true", help="keep the temporary directory and logs")
    e.add_argument("--reuse", metavar="DIR",
                   help="copy database/ and features/ from DIR (a --keep run) instead of "
                        "writing the catalogue and building the index")
    e.add_argument("--storage", choices=("files", "redis"), default="files")
    e.add_argument("--batch-size", type=int, default=Settings().batch_size,
                   help="BATCH_SIZE of the workers (queued searches per forward pass)")
    m = sub.add_parser("model", help="the model alone: images/s per batch size")
    m.add_argument("--batch-sizes", default="1,2,4,8,16,32")
    m.add_argument("--precision", default="auto")
    m.add_argument("--descriptor", default=Settings().descriptor)
    m.add_argument("--weights", default="bsds500")
    m.add_argument("--repeats", type=int, default=64, help="images per batch size (about)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.command == "sizes":
        return cmd_sizes(args, argv)
    if args.command == "model":
        return cmd_model(args, argv)
    return cmd_e2e(args, argv)


if __name__ == "__main__":
    sys.exit(main())
