"""Where the mnist_c stage writes the corrupted test set, and how evaluate and plot read it."""

from pathlib import Path

import numpy as np

from stages.lib.atomic import atomic_path

MNIST_C_PATH = Path("data/mnist_c.npz")
LABELS = "labels"


def save_corrupted(corrupted, labels):
    """One uint8 array (N, 28, 28) a corruption, in the given order, and the labels they share;
    whole or not at all."""
    with atomic_path(MNIST_C_PATH) as temporary:
        np.savez_compressed(temporary, **{LABELS: labels}, **corrupted)


def load_corrupted():
    """(labels, {corruption: images}) as the mnist_c stage wrote them, in its order."""
    with np.load(MNIST_C_PATH) as arrays:
        return arrays[LABELS], {name: arrays[name] for name in arrays.files if name != LABELS}
