"""Descriptors: which VGG16 feature maps a descriptor reads and how it pools them.

Part of the extract stage (imports TensorFlow). Every pooling maps a list of
(n, h, w, c) feature maps to (n, dim); `FeatureExtractor` L2-normalises the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from worker.pipeline.appearance import BLOCKS, PATTERN_DIMS, PROPORTION_DIMS

GEM_P = 3.0


@dataclass(frozen=True)
class Descriptor:
    name: str
    layers: tuple[str, ...]  # VGG16 layer outputs the pooling reads, in order
    pool: Callable[[list[tf.Tensor]], tf.Tensor]
    trim: bool  # crop the drawing to its bounding box before the resize
    summary: str
    grey: bool = False  # feed the model a grey copy: recoloured copies still match
    whiten: int = 0  # keep this many PCA-whitened dims learned on the catalogue (0: none)
    appearance: tuple[tuple[int, float], ...] = ()  # silhouette and colour blocks: size, weight
    copies: bool = False  # whitening learned from synthetic copies (worker/pipeline/copies.py)


def _l2(x: tf.Tensor) -> tf.Tensor:
    return tf.math.l2_normalize(x, axis=-1)


def flatten(maps: list[tf.Tensor]) -> tf.Tensor:
    """(n, 7, 7, 512) -> (n, 25088)."""
    return tf.reshape(maps[0], (tf.shape(maps[0])[0], -1))


def gem(x: tf.Tensor, p: float = GEM_P) -> tf.Tensor:
    """Generalised-mean pooling: (n, h, w, c) -> (n, c)."""
    return tf.pow(tf.reduce_mean(tf.pow(tf.nn.relu(x) + 1e-6, p), axis=(1, 2)), 1.0 / p)


def rmac_regions(size: int, levels: int = 3) -> list[tuple[int, int, int]]:
    """Square R-MAC regions (top, left, side) on a size x size map: l x l regions at level l."""
    regions = []
    for level in range(1, levels + 1):
        side = max(1, (2 * size) // (level + 1))
        starts = [round(i * (size - side) / max(1, level - 1)) for i in range(level)]
        regions += [(top, left, side) for top in starts for left in starts]
    return regions


def rmac(maps: list[tf.Tensor]) -> tf.Tensor:
    """R-MAC: max over each region, L2 each, sum, -> (n, c)."""
    x = maps[0]
    parts = [_l2(tf.reduce_max(x[:, top:top + side, left:left + side, :], axis=(1, 2)))
             for top, left, side in rmac_regions(int(x.shape[1]))]
    return tf.add_n(parts)


def gem_grid(maps: list[tf.Tensor]) -> tf.Tensor:
    """GeM over the whole map and each cell of a 2x2 grid, each L2'd: (n, 5c)."""
    x = maps[0]
    h, w = int(x.shape[1]), int(x.shape[2])
    cells = [x, x[:, :h // 2, :w // 2], x[:, :h // 2, w // 2:], x[:, h // 2:, :w // 2],
             x[:, h // 2:, w // 2:]]
    return tf.concat([_l2(gem(c)) for c in cells], axis=-1)


def gem_multi(maps: list[tf.Tensor], p: float = GEM_P) -> tf.Tensor:
    """GeM of several layers, each L2'd, concatenated: (n, sum c)."""
    return tf.concat([_l2(gem(m, p)) for m in maps], axis=-1)


def gem_multi_p6(maps: list[tf.Tensor]) -> tf.Tensor:
    """GeM with p=6 (closer to max pooling: the strongest local evidence counts most)."""
    return gem_multi(maps, 6.0)


def gem_directions(maps: list[tf.Tensor], p: float = GEM_P) -> tf.Tensor:
    """GeM of each location's unit feature vector (which filters fire, not how strongly:
    contrast, and so colour, counts less), per layer L2'd and concatenated: (n, sum c)."""
    return gem_multi([tf.math.l2_normalize(tf.nn.relu(m), axis=-1) for m in maps], p)


def _gem_one(maps: list[tf.Tensor]) -> tf.Tensor:
    return gem(maps[0])


B3, B4, B5, B5P = "block3_conv3", "block4_conv3", "block5_conv3", "block5_pool"
DESCRIPTORS = {d.name: d for d in [
    Descriptor("flatten", (B5P,), flatten, False,
               "block5_pool flattened (7*7*512 = 25088)"),
    Descriptor("gem", (B5,), _gem_one, False, "GeM (p=3) over block5_conv3: 512"),
    Descriptor("rmac", (B5,), rmac, False, "R-MAC (3 levels) over block5_conv3: 512"),
    Descriptor("gem45", (B4, B5), gem_multi, False, "GeM of block4_conv3 + block5_conv3: 1024"),
    Descriptor("gemgrid", (B5,), gem_grid, False, "GeM over block5_conv3, global + 2x2: 2560"),
    Descriptor("trim-flatten", (B5P,), flatten, True, "trim margins, then flatten: 25088"),
    Descriptor("trim-gem45", (B4, B5), gem_multi, True, "trim margins, then gem45: 1024"),
    Descriptor("trim-rmac", (B5,), rmac, True, "trim margins, then rmac: 512"),
    Descriptor("trim-gemgrid", (B5,), gem_grid, True, "trim margins, then gemgrid: 2560"),
    Descriptor("trim-gem345", (B3, B4, B5), gem_multi_p6, True,
               "trim margins, GeM (p=6) of block3+4+5_conv3: 1280"),
    Descriptor("trim-gem45-pw128", (B4, B5), gem_multi, True,
               "trim-gem45, PCA-whitened to 128 dims learned on the catalogue", whiten=128),
    Descriptor("trim-gem45-pw256", (B4, B5), gem_multi, True,
               "trim-gem45, PCA-whitened to 256 dims learned on the catalogue", whiten=256),
    Descriptor("trim-gem45-grey", (B4, B5), gem_multi, True,
               "trim margins, grey input, then gem45: 1024", grey=True),
    Descriptor("trim-gemgrid-grey", (B5,), gem_grid, True,
               "trim margins, grey input, then gemgrid: 2560", grey=True),
    Descriptor("grey-dir345-pw256-shape-colour", (B3, B4, B5), gem_directions, True,
               "trim margins, grey input, GeM of unit local features of block3+4+5_conv3 "
               "PCA-whitened to 256, + the garment's silhouette (12x12, weight 0.5) and colour "
               "histogram (64, weight 0.4) computed without the model: 464",
               grey=True, whiten=256, appearance=tuple(zip(BLOCKS, (0.5, 0.4), strict=True))),
    Descriptor("grey-dir345-lw256-shape-colour", (B3, B4, B5), gem_directions, True,
               "grey-dir345-pw256-shape-colour with its whitening learned from synthetic "
               "copies of catalogue drawings (other colours, cropped, patched, mirrored, "
               "re-scanned): what copiers change counts less: 464",
               grey=True, whiten=256, appearance=tuple(zip(BLOCKS, (0.5, 0.4), strict=True)),
               copies=True),
    Descriptor("grey-dir345-lw256-shape-colour-pattern", (B3, B4, B5), gem_directions, True,
               "grey-dir345-lw256-shape-colour + the orientations of the pattern's edges "
               "inside the garment (6, weight 0.375), computed without the model: the rest of "
               "the list the same pattern family: 470",
               grey=True, whiten=256, copies=True,
               appearance=((BLOCKS[0], 0.5), (BLOCKS[1], 0.4), (PATTERN_DIMS, 0.375))),
    Descriptor("grey-dir345-lw256-shape-colour-pattern-proportions", (B3, B4, B5), gem_directions,
               True, "grey-dir345-lw256-shape-colour-pattern + the outline's proportions (6, "
               "kept as measured: weight 0), which the exact-match bonus compares: a copy "
               "keeps them, a look-alike cut wider or longer does not: 476",
               grey=True, whiten=256, copies=True,
               appearance=((BLOCKS[0], 0.5), (BLOCKS[1], 0.4), (PATTERN_DIMS, 0.375),
                           (PROPORTION_DIMS, 0.0))),
]}
