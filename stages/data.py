"""Where the prepared arrays, the model and the training log live, the arrays' format (written
by preprocess, read by the later stages), the recipe's scaling and one-hot encoding, and
confusion counts."""

from pathlib import Path

import numpy as np
import pandas as pd

from stages.atomic import atomic_path

PREPARED_DIR = Path("data/prepared")
MODEL_PATH = Path("data/model/model.keras")
TRAIN_LOG_DIR = Path("data/train_log")  # DVCLive's folder: metrics.json and plots/metrics/
NUM_CLASSES = 10


def save_split(name, images, labels):
    """Write one split as compact uint8 arrays, whole or not at all."""
    with atomic_path(PREPARED_DIR / f"{name}.npz") as temporary:
        np.savez_compressed(temporary, images=images, labels=labels)


def load_split(name):
    """Return (images, labels) of one prepared split as stored: uint8, (N, 28, 28) and (N,)."""
    with np.load(PREPARED_DIR / f"{name}.npz") as arrays:
        return arrays["images"], arrays["labels"]


def model_inputs(images, labels):
    """The recipe's preprocessing: (N, 28, 28, 1) float32 in [0, 1], labels one-hot."""
    scaled = images.reshape(-1, 28, 28, 1).astype("float32") / 255
    return scaled, np.eye(NUM_CLASSES, dtype="float32")[labels]


def confusion_counts(predictions):
    """10x10 counts of (actual, predicted) pairs, rows actual, zeros where a pair never occurs."""
    return pd.crosstab(predictions["actual"], predictions["predicted"]).reindex(
        index=range(NUM_CLASSES), columns=range(NUM_CLASSES), fill_value=0
    )
