"""Stage preprocess: parse and check the IDX files, then write compact uint8 arrays.

data/prepared/{train,validation,test}.npz each hold `images` (N, 28, 28) and `labels` (N,).
Scaling to [0, 1] and one-hot labels happen where the arrays are used (stages/data.py).
"""

from pathlib import Path

import numpy as np

from stages import params
from stages.data import save_split
from stages.idx import IdxError, read_pair

RAW_DIR = Path("data/raw")


def main():
    preprocess = params.load("preprocess")
    try:
        train_images, train_labels = read_pair(
            RAW_DIR / "train-images-idx3-ubyte.gz", RAW_DIR / "train-labels-idx1-ubyte.gz"
        )
        test_images, test_labels = read_pair(
            RAW_DIR / "t10k-images-idx3-ubyte.gz", RAW_DIR / "t10k-labels-idx1-ubyte.gz"
        )
    except IdxError as error:
        raise SystemExit(f"preprocess: {error}") from None

    train_images = train_images[: preprocess["train_limit"]]
    train_labels = train_labels[: preprocess["train_limit"]]

    order = np.random.default_rng(preprocess["seed"]).permutation(len(train_images))
    validation_count = round(len(train_images) * preprocess["validation_split"])
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
