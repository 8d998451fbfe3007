"""Stage preprocess: parse and check the IDX files, then write compact uint8 arrays.

data/prepared/{train,validation,test}.npz each hold `images` (N, 28, 28) and `labels` (N,).
Scaling to [0, 1] and one-hot labels happen where the arrays are used (stages/lib/model.py).
"""

from pathlib import Path
from typing import Optional

import numpy as np
from pydantic import Field

from stages.lib import params
from stages.lib.idx import IdxError, read_pair
from stages.lib.splits import save_split

RAW_DIR = Path("data/raw")


class Params(params.Section):
    train_limit: Optional[int] = Field(
        ge=1, description="keep the first N training images (null: all 60,000)")
    validation_split: float = Field(
        ge=0, lt=1, description="fraction of the training images held out as validation images")
    seed: int = params.Seed("shuffles the training images before the validation split")


def main():
    preprocess = params.load("preprocess", Params)
    try:
        train_images, train_labels = read_pair(
            RAW_DIR / "train-images-idx3-ubyte.gz", RAW_DIR / "train-labels-idx1-ubyte.gz"
        )
        test_images, test_labels = read_pair(
            RAW_DIR / "t10k-images-idx3-ubyte.gz", RAW_DIR / "t10k-labels-idx1-ubyte.gz"
        )
    except IdxError as error:
        raise SystemExit(f"preprocess: {error}") from None

    limit, split = preprocess["train_limit"], preprocess["validation_split"]
    # A value the data cannot honour is refused, not quietly clipped to what there is.
    if limit is not None and limit > len(train_images):
        raise SystemExit(f"preprocess: preprocess.train_limit: {limit} is more than the "
                         f"{len(train_images)} training images in {RAW_DIR}")
    train_images, train_labels = train_images[:limit], train_labels[:limit]
    validation_count = round(len(train_images) * split)
    if split and not 0 < validation_count < len(train_images):
        raise SystemExit(f"preprocess: preprocess.validation_split: {split} of "
                         f"{len(train_images)} images holds out {validation_count}, "
                         f"leaving {len(train_images) - validation_count} to train on")

    order = np.random.default_rng(preprocess["seed"]).permutation(len(train_images))
    validation, train = np.sort(order[:validation_count]), np.sort(order[validation_count:])

    splits = {
        "train": (train_images[train], train_labels[train]),
        "validation": (train_images[validation], train_labels[validation]),
        "test": (test_images, test_labels),
    }
    for name, (images, labels) in splits.items():
        save_split(name, images, labels)
        print(f"preprocess: {name}: {len(images)} images")


if __name__ == "__main__":
    main()
