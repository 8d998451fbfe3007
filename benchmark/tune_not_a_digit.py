"""Tune what tells one digit from several digits, scribbles and blobs on the tuning parts of the
drawn digits and drawn not-digits (data/ood/, `dvc repro ood`), never their reporting parts.

Measures each image as stages/lib/prepare.py does (one_digit_measures) and prints, for each
value tried of MAX_CROSSINGS and MAX_STROKE, the share of each kind of image refused: digits
refused are the rule's cost, the other kinds its catch. Images with no ink at all (refused before
the rule) count as refused.

    python benchmark/tune_not_a_digit.py MAX_CROSSINGS=4,5,6,7 MAX_STROKE=0.7,0.8,0.9
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.lib import prepare  # noqa: E402
from stages.lib.drawn import OOD_DIR, read_labels, read_not_digits  # noqa: E402


def measures(path):
    """one_digit_measures of an image file's ink, as mnist_like finds it; None without ink."""
    with Image.open(path) as image:
        ink = prepare.cleaned_ink(ImageOps.exif_transpose(prepare.working_size(image)))
    mask = ink >= prepare.INK_THRESHOLD
    return prepare.one_digit_measures(mask) if mask.any() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="*", metavar="CONSTANT=VALUE,VALUE")
    parser.add_argument("--ood", type=Path, default=ROOT / OOD_DIR)
    args = parser.parse_args()
    images = pd.concat([read_labels(args.ood, "tuning").assign(kind="digit"),
                        read_not_digits(args.ood, "tuning")], ignore_index=True)
    measured = [measures(args.ood / name) for name in images["file"]]
    rows = []
    for candidate in ["committed=0", *args.candidates]:
        name, values = candidate.split("=", 1)
        committed = getattr(prepare, name, None)
        for value in map(float, values.split(",")):
            if committed is not None:
                setattr(prepare, name, value)
            refused = [found is None or prepare.not_one_digit(found) is not None
                       for found in measured]
            shares = images.assign(refused=refused).groupby("kind", sort=False)["refused"]
            rows.append({"constant": name, "value": committed if committed is None else value,
                         **shares.mean().round(4).to_dict(),
                         "digits refused": int(shares.sum()["digit"])})
            if committed is not None:
                setattr(prepare, name, committed)
    print(f"{len(images)} tuning images: " + ", ".join(
        f"{count} {kind}" for kind, count in images["kind"].value_counts(sort=False).items()))
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
