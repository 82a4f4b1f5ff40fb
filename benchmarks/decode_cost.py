"""What one large upload costs before any capacity check can refuse it: time and peak RSS
of the web's handling (`read_side`: check and, since the bounded-storage change, decode and
re-encode) and of the worker's (`make_canvas` on what the web stored), each in a fresh
process. The image: a 6320 x 6320 16-bit grey PNG line drawing of ~170 KB.

    .venv/bin/python -m benchmarks.decode_cost
"""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 6320
MAX_PIXELS = 40_000_000


def drawing() -> bytes:
    """A white 16-bit grey page with a few dark lines (~170 KB as PNG)."""
    arr = np.full((SIDE, SIDE), 65535, np.uint16)
    for i in range(0, SIDE, 53):
        arr[i, :] = 0
        arr[:, (i * 7) % SIDE] = 1200
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def web_path(data: bytes) -> bytes:
    from werkzeug.datastructures import FileStorage

    from web.submissions import read_side

    return read_side(FileStorage(io.BytesIO(data)), "front", MAX_PIXELS)[0]


def worker_path(data: bytes) -> None:
    from worker.pipeline.preprocess import make_canvas

    make_canvas(data, MAX_PIXELS)


def child(path: str, stage: str) -> None:
    data = Path(path).read_bytes()
    import web.submissions  # noqa: F401 - imports outside the measurement
    import worker.pipeline.preprocess  # noqa: F401
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = web_path(data) if stage == "web" else worker_path(data)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if stage == "web":
        Path(path + ".stored").write_bytes(out)
    print(f"{stage}: {elapsed:.2f} s, peak RSS +{(peak - before) / 1024:.0f} MiB "
          f"(input {len(data) / 1024:.0f} KiB)")


def main() -> None:
    path = Path("/tmp/decode_cost.png")
    path.write_bytes(drawing())
    print(f"{SIDE}x{SIDE} 16-bit grey PNG, {path.stat().st_size / 1024:.0f} KiB")
    subprocess.run([sys.executable, "-m", "benchmarks.decode_cost", "--child", str(path), "web"],
                   check=True)
    stored = path.with_name(path.name + ".stored")
    subprocess.run([sys.executable, "-m", "benchmarks.decode_cost", "--child", str(stored),
                    "worker"], check=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:4])
    else:
        main()
