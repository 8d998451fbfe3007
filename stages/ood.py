"""Stage ood: digits that are not MNIST, drawn as the image files users hand to predict, for
evaluate's out-of-distribution score. Writes data/ood/: PNGs and labels.csv.

The source is the UCI handwritten digits that scikit-learn ships (1,797 digits, 8x8, written by
other people on other forms and scanned by another machine), so any machine builds the set
without a network. Each digit is scaled up from its 8x8 grid, which leaves thick, blurred strokes
with blocky curves, and drawn on a canvas of a random size, dark on light or light on dark, with
one of the troubles of photos and scans: none, blur, low contrast or noisy paper. labels.csv
names each file's digit and how it was drawn, so evaluate can say where a model fails.
"""

import csv
from typing import Optional

import numpy as np
from PIL import Image
from pydantic import Field
from scipy.ndimage import gaussian_filter

from stages.lib import params
from stages.lib.atomic import atomic_folder
from stages.lib.drawn import LABELS_FILE, OOD_DIR

UCI_DIGITS = 1797  # the UCI digits scikit-learn ships
SIZES = (28, 48, 96, 200)  # canvas side in pixels: thumbnails to phone crops
TROUBLES = ("none", "blur", "low_contrast", "noise")
COLUMNS = ("file", "digit", "size", "polarity", "trouble")


class Params(params.Section):
    count: Optional[int] = Field(
        ge=1, le=UCI_DIGITS,
        description="how many of scikit-learn's 1,797 UCI digits to draw (null: all)")
    seed: int = params.Seed("which digits are drawn, and how (size, polarity, trouble)")


def source_digits():
    """scikit-learn's 8x8 digits as (images in [0, 1], labels)."""
    from sklearn.datasets import load_digits  # a second or two: only when drawing

    digits = load_digits()
    return digits.images / 16, digits.target


def draw(digit, size, dark_on_light, trouble, rng):
    """One 8x8 digit drawn on a size x size grayscale canvas."""
    box = max(8, round(size * rng.uniform(0.55, 0.8)))
    ink = Image.fromarray(digit.astype(np.float32)).resize((box, box), Image.BICUBIC)
    canvas = np.zeros((size, size), dtype=np.float32)
    top, left = rng.integers(0, size - box + 1, size=2)
    canvas[top : top + box, left : left + box] = np.clip(np.asarray(ink), 0, 1)

    if trouble == "blur":
        canvas = gaussian_filter(canvas, sigma=box * 0.06)
    contrast = rng.uniform(0.12, 0.25) if trouble == "low_contrast" else rng.uniform(0.7, 0.95)
    paper = rng.uniform(0.75, 0.95) if dark_on_light else rng.uniform(0.0, 0.15)
    pixels = paper - contrast * canvas if dark_on_light else paper + contrast * canvas
    if trouble == "noise":
        pixels = pixels + rng.normal(0, rng.uniform(0.05, 0.12), pixels.shape)
    return Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def build(folder, count, seed):
    """Write `count` drawn digits (all 1,797 when None) and labels.csv to `folder`, replacing it
    whole: a crash leaves the previous set or none, never part of one."""
    images, labels = source_digits()
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(labels))[:count]
    with atomic_folder(folder) as temporary:
        rows = []
        for number, index in enumerate(chosen):
            size = int(rng.choice(SIZES))
            dark_on_light = bool(rng.integers(2))
            trouble = TROUBLES[number % len(TROUBLES)]
            name = f"{number:04d}.png"
            draw(images[index], size, dark_on_light, trouble, rng).save(temporary / name)
            rows.append((name, int(labels[index]), size,
                         "dark_on_light" if dark_on_light else "light_on_dark", trouble))
        with open(temporary / LABELS_FILE, "w", newline="") as file:
            csv.writer(file).writerows([COLUMNS, *rows])
    return len(rows)


def main():
    ood = params.load("ood", Params)
    drawn = build(OOD_DIR, ood["count"], ood["seed"])
    print(f"ood: {drawn} drawn digits in {OOD_DIR}")


if __name__ == "__main__":
    main()
