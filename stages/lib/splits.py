"""The prepared arrays' format: written by preprocess, read by train, evaluate and plot."""

from pathlib import Path

import numpy as np

from stages.lib.atomic import atomic_path

PREPARED_DIR = Path("data/prepared")


def save_split(name, images, labels):
    """Write one split as compact uint8 arrays, whole or not at all."""
    with atomic_path(PREPARED_DIR / f"{name}.npz") as temporary:
        np.savez_compressed(temporary, images=images, labels=labels)


def load_split(name):
    """Return (images, labels) of one prepared split as stored: uint8, (N, 28, 28) and (N,)."""
    with np.load(PREPARED_DIR / f"{name}.npz") as arrays:
        return arrays["images"], arrays["labels"]
