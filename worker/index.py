"""`python -m worker.index`: the same command as `python -m worker.cli.index` (the issues' spelling)."""
import sys

from worker.cli.index import main

if __name__ == "__main__":
    sys.exit(main())
