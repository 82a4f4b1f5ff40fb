"""`python -m worker.cli.index` (`make index`): build the catalogue's feature banks.

If any image is unreadable, every failure is listed and the existing banks stay untouched.
"""

from __future__ import annotations

import argparse
import logging
import sys

from worker.core.catalogue import CatalogueError
from worker.core.settings import InvalidSetting, Settings
from worker.indexing.build import UnreadableImages, build_index
from worker.pipeline.weights import WeightsUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.cli.index",
                                     description="Build the feature banks of the catalogue.")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from worker.pipeline.extract import FeatureExtractor

    try:
        settings = Settings.from_env()
        extractor = FeatureExtractor(settings.vgg16_weights, settings.descriptor,
                                     settings.precision)
        manifest = build_index(settings, extractor, args.batch_size)
    except (CatalogueError, UnreadableImages, InvalidSetting, WeightsUnavailable) as exc:
        print(f"index: {exc}\nindex: the existing banks were left untouched.", file=sys.stderr)
        return 1
    print(f"indexed {manifest['n_pairs']} pairs ({manifest['descriptor']}, dim {manifest['dim']},"
          f" weights {manifest['weights']['id']}) in {manifest['build_seconds']} s"
          f" -> {settings.features_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
