"""`python -m worker.cli.index` (`make index`): build the catalogue's feature banks.

Images whose rows the chunk cache already holds are not extracted again: an interrupted
build resumes, and after pairs.csv changes only new or changed images are extracted.
`--distributed`: the running workers extract the chunks (worker/indexing/distributed.py).
If any image is unreadable, every failure is listed and the existing banks stay untouched.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from redis.exceptions import RedisError

from worker.core.bank import (
    QUANTISED_MODEL,
    BankError,
    checked_blob,
    precision_serves,
    read_manifest,
)
from worker.core.catalogue import CatalogueError, designs_to_index, load_catalogue
from worker.core.generations import current_dir
from worker.core.numerals import whole
from worker.core.settings import InvalidSetting, Settings
from worker.indexing.build import build_index
from worker.indexing.chunks import ChunkMissing, UnreadableImages
from worker.indexing.distributed import DistributedBuildFailed
from worker.indexing.recovery import listed_state
from worker.pipeline.precision import resolve_precision
from worker.pipeline.preprocess import preprocess_params
from worker.pipeline.weights import WeightsUnavailable, file_digest, resolve_weights, weights_for

BATCH_MAX = 256  # VGG16's first block holds 12.8 MB an image (float32): 256 is ~3.3 GB at once


def batch_size(raw: str) -> int:
    """`--batch-size`: an int from 1 to BATCH_MAX, else argparse's usage error (exit 2)."""
    value = whole(raw)
    if value is None or not 1 <= value <= BATCH_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {BATCH_MAX}, "
                                         f"got {raw[:20]!r}")
    return value


LISTED_OTHERWISE = {"designs": "{} lists other designs than the index",
                    "columns": "{}'s further columns differ from the index's"}


def _drawing_changed(settings: Settings, since_ns: int) -> str | None:
    """A drawing pairs.csv lists that changed after `since_ns` (overwritten in place under
    its name, renamed into place, restored with an older mtime by `cp -p`: each sets the
    inode's change time); None when none did. One stat a drawing; a missing one is not seen
    (the index still serves the rest; the grid leaves its cell blank)."""
    catalogue = load_catalogue(settings.database_dir)
    for relative in dict.fromkeys(catalogue.fronts + catalogue.backs):
        try:
            if catalogue.image_path(relative).stat().st_ctime_ns > since_ns:
                return relative
        except (OSError, CatalogueError):
            continue
    return None


def why_build(settings: Settings) -> str | None:
    """Why the index must be built (again) before a worker can serve it; None when the one
    there serves these settings (`make run` and `--if-needed` ask)."""
    current = settings.features_dir / "CURRENT"
    if not current.is_file() or not settings.catalogue_csv.is_file():
        return "there is no index yet"  # (no catalogue: the build says so)
    if settings.catalogue_csv.stat().st_mtime > current.stat().st_mtime:
        return f"{settings.catalogue_csv.name} changed since the index was built"
    try:
        manifest = read_manifest(settings.features_dir)
    except BankError as exc:
        return str(exc)
    try:  # its content, whatever its file time (edited during a build, or restored with
        state, _ = listed_state(settings)  # old times: `cp -p`, `rsync -a`, `tar`)
    except (CatalogueError, BankError) as exc:
        return str(exc)
    if state in LISTED_OTHERWISE:  # "pending": the worker's start completes an edit's rewrite
        return LISTED_OTHERWISE[state].format(settings.catalogue_csv.name)
    if (changed := _drawing_changed(settings, current.stat().st_mtime_ns)) is not None:
        return f"the drawing {changed} changed since the index was built"
    return refused_by_worker(settings, manifest)


def refused_by_worker(settings: Settings, manifest: dict) -> str | None:
    """Why a worker with these settings would refuse the index of `manifest`; None if it
    serves it (whatever changed in the catalogue since)."""
    # what the worker would refuse (worker.core.bank.check_model_matches), short of loading
    # the model: weights by name and file digest here, by their loaded values in the worker
    built = manifest.get("descriptor")
    if built != settings.descriptor:  # an upgrade changed the default, say
        return f"the index holds descriptor {built!r}, DESCRIPTOR is {settings.descriptor!r}"
    # its rows are not what this version makes of the same drawings (a trim or an appearance
    # column's measure changed since); an index from before the record was kept: not compared
    prepared = manifest.get("preprocess")
    if prepared is not None and prepared != preprocess_params(bool(prepared.get("trim"))):
        return ("the index's drawings were prepared or measured another way than this version "
                "does it")
    built_at = manifest.get("precision") or "float32"
    precision, _ = resolve_precision(settings.precision, settings.descriptor)
    if not precision_serves(built_at, precision):
        return f"the index was built at precision {built_at}, the worker will run {precision}"
    if built_at == "int8" and not _model_intact(settings, manifest):  # 15 MB: hashed, cheap
        return f"the index's int8 model ({QUANTISED_MODEL}) is missing or does not match it"
    built_with = manifest.get("weights", {})
    try:
        choice = resolve_weights(weights_for(settings))
    except WeightsUnavailable:
        return None  # the worker says why it cannot load them; a build could not either
    if built_with.get("id") != choice.id:
        return (f"the index was built with VGG16 weights {built_with.get('id')!r}, the worker "
                f"will load {choice.id!r}")
    # an index from before the digest was recorded has none: compared by name only
    if built_with.get("file") and built_with["file"] != file_digest(choice):
        return f"the VGG16 weights file {choice.path.name} changed since the index was built"
    return None


def _model_intact(settings: Settings, manifest: dict) -> bool:
    """Whether the int8 model of the current index is the one its manifest records (the
    worker refuses another: compose restarted it for ever while `--if-needed` built nothing)."""
    try:  # what the worker's load checks
        checked_blob(current_dir(settings.features_dir), manifest, "quantised_model",
                     QUANTISED_MODEL)
    except (BankError, OSError):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.cli.index",
                                     description="Build the feature banks of the catalogue.")
    parser.add_argument("--batch-size", type=batch_size, default=16,
                        help=f"images a forward pass, 1-{BATCH_MAX} (default 16)")
    parser.add_argument("--distributed", action="store_true",
                        help="have the running workers (python -m worker) extract the chunks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--if-needed", action="store_true",
                        help="build only if there is no index, pairs.csv changed since, "
                             "the worker would refuse it (another descriptor, weights or int8 "
                             "against float), or its drawings were prepared or measured another "
                             "way than this version does it")
    parser.add_argument("--keep-serving", action="store_true",
                        help="a failed build exits 0 when the index already there would still "
                             "be served (docker compose's worker then starts on it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # kill or a lost SSH session unwinds the build as Ctrl-C does (a distributed one withdraws
    # its queued chunks in a finally, which a signal's default action skipped); a hang-up
    # nohup ignores stays ignored, and the handlers are put back for a caller of main()
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    for signum, handler in before.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, _unwind)
    try:
        return _index(args)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _unwind(signum, frame) -> None:
    """The first signal unwinds; later ones (a hang-up comes twice) wait for that to end."""
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    sys.exit(128 + signum)


def _by_design(exc: UnreadableImages, settings: Settings) -> str:
    """Its drawings each named with the designs (and sides) pairs.csv lists them for."""
    try:
        catalogue = load_catalogue(settings.database_dir)
    except CatalogueError:
        return str(exc)
    uses: dict[str, list[str]] = {}
    for name, front, back in zip(catalogue.names, catalogue.fronts, catalogue.backs, strict=True):
        uses.setdefault(front, []).append(f"{name} front")
        uses.setdefault(back, []).append(f"{name} back")
    lines = [f"  {path} ({', '.join(uses.get(path, ['not listed'])[:3])}"
             f"{' …' if len(uses.get(path, [])) > 3 else ''}): {reason}"
             for path, reason in exc.failures]
    return f"{len(exc.failures)} catalogue image(s) could not be read:\n" + "\n".join(lines)


def _still_served(settings: Settings) -> bool:
    try:
        return refused_by_worker(settings, read_manifest(settings.features_dir)) is None
    except BankError:  # none, or unreadable
        return False


def _index(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        if args.if_needed:
            reason = why_build(settings)
            if reason is None:
                print(f"index: the index in {settings.features_dir} serves this catalogue and "
                      f"these settings; nothing to build")
                return 0
            print(f"index: building: {reason}")
        designs_to_index(settings.database_dir)  # refused before the model loads
        from worker.pipeline.extract import FeatureExtractor  # TensorFlow: only to build

        extractor = FeatureExtractor(weights_for(settings), settings.descriptor,
                                     settings.precision)
        # judged again under the build's lock: a build under way may have made it current
        manifest = build_index(settings, extractor, args.batch_size, not args.no_progress,
                               distributed=args.distributed,
                               still_needed=(lambda: why_build(settings)) if args.if_needed
                               else None)
    except (CatalogueError, UnreadableImages, InvalidSetting, WeightsUnavailable,
            DistributedBuildFailed, ChunkMissing, RedisError, OSError) as exc:  # OSError: disk
        if isinstance(exc, UnreadableImages):
            exc = _by_design(exc, settings)
        print(f"index: {exc}\nindex: the existing banks were left untouched.", file=sys.stderr)
        if args.keep_serving and not isinstance(exc, InvalidSetting) and _still_served(settings):
            print("index: the index built before still serves (without the changes since): "
                  "--keep-serving, so the workers start on it", file=sys.stderr)
            return 0
        return 1
    if manifest is None:
        print(f"index: a build that was under way made the index in {settings.features_dir} "
              "serve this catalogue; nothing to build")
        return 0
    images = manifest["images"]
    print(f"indexed {manifest['n_pairs']} pairs ({manifest['descriptor']}, dim {manifest['dim']},"
          f" weights {manifest['weights']['id']}) in {manifest['build_seconds']} s"
          f" -> {settings.features_dir}; {images['extracted']} image(s) extracted"
          f"{' by the workers' if args.distributed else ''}, {images['reused']} reused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
