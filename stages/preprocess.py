"""Stage preprocess: parse and check the IDX files, then write compact uint8 arrays.

data/prepared/{train,validation,test}.npz each hold `images` (N, 28, 28) and `labels` (N,).
Scaling to [0, 1] and one-hot labels happen where the arrays are used (stages/data.py).
"""

from pathlib import Path

import numpy as np

from stages import params
from stages.atomic import atomic_path
from stages.idx import IdxError, read_pair

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")


def save_split(name, images, labels):
    with atomic_path(PREPARED_DIR / f"{name}.npz") as temporary:
        np.savez_compressed(temporary, images=images, labels=labels)
    print(f"preprocess: {name}: {len(images)} images")


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

    save_split("train", train_images[train], train_labels[train])
    save_split("validation", train_images[validation], train_labels[validation])
    save_split("test", test_images, test_labels)


if __name__ == "__main__":
    main()
