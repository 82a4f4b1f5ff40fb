"""`python -m worker.duplicates`: the same command as `python -m worker.cli.duplicates`."""
import sys

from worker.cli.duplicates import main

if __name__ == "__main__":
    sys.exit(main())
