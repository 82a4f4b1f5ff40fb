"""What one large upload costs before any capacity check can refuse it: time and peak RSS
of the web's handling (`read_side`: check and, since the bounded-storage change, decode and
re-encode) and of the worker's (`make_canvas` on what the web stored), each in a fresh
process. The image: a 6320 x 6320 16-bit grey PNG line drawing of ~100 KB, or with
`--rgb` a 4000 x 3000 RGB PNG of 200 coloured boxes (the common large scan: its blank check
reads every pixel once), or with `--rgba` a 6000 x 6600 transparent PNG holding a dress-sized
box and a stripe (a drawing exported with a transparent background). Each stage is run 5
times; the median time is printed.

    .venv/bin/python -m benchmarks.decode_cost [--rgb | --rgba]
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


def rgb_drawing() -> bytes:
    """A 4000 x 3000 white RGB page with 200 coloured boxes, as PNG."""
    from PIL import ImageDraw

    rng = np.random.default_rng(0)
    img = Image.new("RGB", (4000, 3000), "white")
    draw = ImageDraw.Draw(img)
    for _ in range(200):
        x, y = (int(v) for v in rng.integers(0, 3900, 2))
        draw.rectangle([x, y, x + 80, y + 60], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def rgba_drawing() -> bytes:
    """A 6000 x 6600 transparent page with a box and a stripe on it, as PNG (~160 KB)."""
    img = Image.new("RGBA", (6000, 6600), (0, 0, 0, 0))
    img.paste((200, 30, 30, 255), (1000, 1000, 5000, 5600))
    img.paste((20, 20, 160, 255), (2500, 1000, 2600, 5600))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


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

    return read_side(FileStorage(io.BytesIO(data)), "front", MAX_PIXELS)


def worker_path(data: bytes) -> None:
    from worker.pipeline.preprocess import make_canvas

    make_canvas(data, MAX_PIXELS)


def child(path: str, stage: str) -> None:
    data = Path(path).read_bytes()
    import web.submissions  # noqa: F401 - imports outside the measurement
    import worker.pipeline.preprocess  # noqa: F401
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(5):
        start = time.perf_counter()
        out = web_path(data) if stage == "web" else worker_path(data)
        times.append(time.perf_counter() - start)
    elapsed = sorted(times)[2]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if stage == "web":
        Path(path + ".stored").write_bytes(out)
    print(f"{stage}: {elapsed:.2f} s, peak RSS +{(peak - before) / 1024:.0f} MiB "
          f"(input {len(data) / 1024:.0f} KiB)")


def main(kind: str) -> None:
    path = Path("/tmp/decode_cost.png")
    path.write_bytes({"rgb": rgb_drawing, "rgba": rgba_drawing}.get(kind, drawing)())
    kind = {"rgb": "4000x3000 RGB PNG", "rgba": "6000x6600 transparent PNG"}.get(
        kind, f"{SIDE}x{SIDE} 16-bit grey PNG")
    print(f"{kind}, {path.stat().st_size / 1024:.0f} KiB")
    subprocess.run([sys.executable, "-m", "benchmarks.decode_cost", "--child", str(path), "web"],
                   check=True)
    stored = path.with_name(path.name + ".stored")
    subprocess.run([sys.executable, "-m", "benchmarks.decode_cost", "--child", str(stored),
                    "worker"], check=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:4])
    else:
        main(next((a[2:] for a in sys.argv[1:] if a in ("--rgb", "--rgba")), "grey"))
