"""Where the ood stage writes the drawn digits that are not MNIST, and how evaluate reads them."""

from pathlib import Path

import pandas as pd

OOD_DIR = Path("data/ood")
LABELS_FILE = "labels.csv"
# The two parts of the drawn digits, which share no source digit: thresholds and recipe choices
# are made on the tuning part, scores are reported on the reporting part.
PARTS = ("tuning", "reporting")
NOT_DIGITS_DIR = "not_digits"  # within OOD_DIR, with a labels.csv of its own (file, part, kind...)


def read_labels(folder=OOD_DIR, part=None):
    """labels.csv as a table (file, part, draw, source, digit, size, polarity, condition), all of
    it or one part's rows."""
    drawn = pd.read_csv(Path(folder) / LABELS_FILE)
    return drawn if part is None else drawn[drawn["part"] == part].reset_index(drop=True)


def read_not_digits(folder=OOD_DIR, part=None):
    """The not-digits' labels.csv (file, part, draw, kind, size, polarity, condition), with each
    file's path from `folder`, all of it or one part's rows."""
    found = pd.read_csv(Path(folder) / NOT_DIGITS_DIR / LABELS_FILE)
    found["file"] = NOT_DIGITS_DIR + "/" + found["file"]
    return found if part is None else found[found["part"] == part].reset_index(drop=True)
