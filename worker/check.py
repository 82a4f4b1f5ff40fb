"""`python -m worker.check`: the same command as `python -m worker.cli.check` (the issues' spelling)."""
import sys

from worker.cli.check import main

if __name__ == "__main__":
    sys.exit(main())
