"""Confusion counts of a predictions table: evaluate's per-digit scores, plot's matrix and
compare's changed cells."""

import pandas as pd

from stages.lib.splits import NUM_CLASSES


def confusion_counts(predictions):
    """10x10 counts of (actual, predicted) pairs, rows actual, zeros where a pair never occurs."""
    return pd.crosstab(predictions["actual"], predictions["predicted"]).reindex(
        index=range(NUM_CLASSES), columns=range(NUM_CLASSES), fill_value=0
    )
