"""Where the ood stage writes the drawn digits that are not MNIST, and how evaluate reads them."""

from pathlib import Path

import pandas as pd

OOD_DIR = Path("data/ood")
LABELS_FILE = "labels.csv"


def read_labels(folder=OOD_DIR):
    """labels.csv as a table: file, digit, size, polarity, trouble."""
    return pd.read_csv(Path(folder) / LABELS_FILE)
