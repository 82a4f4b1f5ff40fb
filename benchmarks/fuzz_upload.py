"""Fuzz the upload validator: `python -m benchmarks.fuzz_upload [--seconds 60]` (`make fuzz`).

Hypothesis feeds random bytes and byte-level mutations of valid JPEG/PNG files to the
functions a search's drawing goes through: the web's check and stored form (`stored_form`),
then the worker's canvas of that stored form (`query_canvas`); and to the index's and a
catalogue add's decode of a drawing as given (`make_canvas`). Any exception other than
`ImageRejected` is a finding: it would be a 500 or a crashed search. Bounded by time.
"""

from __future__ import annotations

import argparse
import io
import sys
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from worker.core.images import ImageRejected, stored_form
from worker.pipeline.preprocess import make_canvas, query_canvas

MAX_PIXELS = 4_000_000


def _seed_files() -> list[bytes]:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    files = []
    for fmt, mode in (("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"), ("JPEG", "RGB"),
                      ("JPEG", "CMYK"), ("PNG", "I;16"), ("PNG", "1")):
        buf = io.BytesIO()
        img.convert(mode).save(buf, fmt)
        files.append(buf.getvalue())
    return files


SEEDS = _seed_files()


@st.composite
def uploads(draw) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=4096))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(("flip", "truncate", "insert", "zero")))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif data:
            data[pos:pos + 16] = bytes(min(16, len(data) - pos))
    return bytes(data)


def run(seconds: float) -> dict:
    stats = {"inputs": 0, "accepted": 0, "rejected": 0, "findings": []}
    deadline = time.monotonic() + seconds

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(uploads())
    def check(data: bytes) -> None:
        if time.monotonic() > deadline:
            return
        stats["inputs"] += 1
        try:
            canvas = make_canvas(data, MAX_PIXELS, trim=True)  # the index's, an add's
            assert canvas.shape == (224, 224, 3)
        except ImageRejected:
            pass
        except Exception as exc:  # noqa: BLE001 - every other exception is what we hunt
            stats["findings"].append(f"{type(exc).__name__}: {exc} (first bytes {data[:16]!r})")
        try:
            stored, _ = stored_form(data, MAX_PIXELS)  # the web's
            canvas, _ = query_canvas(stored, MAX_PIXELS, True, None, "front")  # the worker's
            assert canvas.shape == (224, 224, 3)
            stats["accepted"] += 1
        except ImageRejected:
            stats["rejected"] += 1
        except Exception as exc:  # noqa: BLE001 - every other exception is what we hunt
            stats["findings"].append(f"{type(exc).__name__}: {exc} (first bytes {data[:16]!r})")

    while time.monotonic() < deadline:
        check()
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz the upload validator for a bounded time.")
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    stats = run(args.seconds)
    print(f"fuzzed {stats['inputs']} inputs in {args.seconds:g} s: {stats['accepted']} accepted, "
          f"{stats['rejected']} rejected with a clear message, {len(stats['findings'])} findings")
    for finding in stats["findings"][:20]:
        print(f"  finding: {finding}")
    return 1 if stats["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
