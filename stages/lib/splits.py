"""The prepared arrays' format (written by preprocess, read by train, evaluate and plot), what
their labels are, and where train leaves the model that evaluate, plot and predict read."""

from pathlib import Path

import numpy as np

from stages.lib.atomic import atomic_path

PREPARED_DIR = Path("data/prepared")
NUM_CLASSES = 10  # the labels are the digits 0-9
MODEL_PATH = Path("data/model/model.keras")


def save_split(name, images, labels):
    """Write one split as compact uint8 arrays, whole or not at all."""
    with atomic_path(PREPARED_DIR / f"{name}.npz") as temporary:
        np.savez_compressed(temporary, images=images, labels=labels)


def load_split(name):
    """Return (images, labels) of one prepared split as stored: uint8, (N, 28, 28) and (N,)."""
    with np.load(PREPARED_DIR / f"{name}.npz") as arrays:
        return arrays["images"], arrays["labels"]
