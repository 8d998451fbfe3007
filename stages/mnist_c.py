"""Stage mnist_c: MNIST-C, the corruption benchmark of Mu and Gilmer (2019), applied to the test
set: fifteen corruptions (noise, blur, geometry, fog, lines, edges) at the benchmark's severities
(stages/lib/corruptions.py), for evaluate's robustness score. Writes data/mnist_c.npz: each
corruption's images and the test labels."""

import time
from typing import Literal, Optional

import numpy as np
from pydantic import Field, field_validator

from stages.lib import params
from stages.lib.mnist_c_file import MNIST_C_PATH, save_corrupted
from stages.lib.corruptions import CORRUPTIONS
from stages.lib.splits import load_split


Corruption = Literal[tuple(CORRUPTIONS)]


class Params(params.Section):
    corruptions: list[Corruption] = Field(
        min_length=1, description="which of MNIST-C's 15 corruptions to apply, in this order")
    count: Optional[int] = Field(
        ge=1, description="corrupt the first N test digits (null: all of them)")
    seed: int = params.Seed("every corruption's random draws (each its own stream)")

    @field_validator("corruptions")
    @classmethod
    def each_once(cls, corruptions):
        if len(set(corruptions)) != len(corruptions):
            raise ValueError("names a corruption twice")
        return corruptions


def corrupt(images, name, seed):
    """The test images under one corruption, as uint8. A corruption's stream is derived from the
    seed and its place in the benchmark's list, so it draws the same whatever else is chosen."""
    stream = np.random.SeedSequence(seed, spawn_key=(list(CORRUPTIONS).index(name),))
    corrupted = CORRUPTIONS[name](images / 255.0, np.random.default_rng(stream))
    return np.round(corrupted * 255).astype(np.uint8)


def main():
    mnist_c = params.load("mnist_c", Params)
    images, labels = load_split("test")
    count = mnist_c["count"]
    # A value the data cannot honour is refused, not quietly clipped to what there is.
    if count is not None and count > len(images):
        raise SystemExit(f"mnist_c: mnist_c.count: {count} is more than the {len(images)} test "
                         f"digits")
    images, labels = images[:count], labels[:count]
    corrupted = {}
    for name in mnist_c["corruptions"]:
        started = time.perf_counter()
        corrupted[name] = corrupt(images, name, mnist_c["seed"])
        print(f"mnist_c: {name}: {len(images)} images in {time.perf_counter() - started:.1f} s")
    save_corrupted(corrupted, labels)
    print(f"mnist_c: {MNIST_C_PATH}")


if __name__ == "__main__":
    main()
