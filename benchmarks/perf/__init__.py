"""Performance of the paired search; `python -m benchmarks.perf --help` (see __main__.py).

report: what every subcommand prints; sizes (+ banks): the search stage against bank size;
e2e: the service end to end (service: starting it, catalogue: its index and query images,
searches: over HTTP, bursts: concurrent); model: the forward pass alone.
"""
