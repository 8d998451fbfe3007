"""What predict's median filter for noisy paper gains on the out-of-distribution digits.

Scores each model on data/ood/'s tuning part (built by `dvc repro ood`), where predict's
thresholds are chosen, prepared with and without the filter, in all and by how the digits were
drawn.

    python benchmark/ood_denoise.py seed=data/model/model.keras strong=strong.keras
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.lib import backend, prepare  # noqa: E402
from stages.lib.drawn import OOD_DIR, read_labels  # noqa: E402


def main():
    backend.use(backend.available())
    from stages.lib.model import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=PATH")
    parser.add_argument("--ood", type=Path, default=ROOT / OOD_DIR)
    args = parser.parse_args()
    drawn = read_labels(args.ood, "tuning")
    labels = drawn["digit"].to_numpy()
    prepared = {denoise: [prepare.load_digit_or_none(args.ood / file, denoise)
                          for file in drawn["file"]] for denoise in (True, False)}
    rows = []
    for model_name, path in (model.split("=", 1) for model in args.models):
        model = load_model(path)
        for denoise, digits in prepared.items():
            refused = np.array([digit is None for digit in digits])  # a wrong answer
            inputs = np.stack([np.zeros((28, 28)) if digit is None else digit for digit in digits])
            right = model.predict(inputs[..., None], batch_size=1000, verbose=0).argmax(axis=1)
            right = (right == labels) & ~refused
            by_condition = drawn.assign(right=right).groupby("condition")["right"].mean()
            rows.append({"model": model_name, "median filter": "on" if denoise else "off",
                         "all": right.mean(),
                         **by_condition.to_dict()})
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
