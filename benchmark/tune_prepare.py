"""Tune predict's preparation on the tuning part of the drawn digits, never the reporting part.

Scores a model on data/ood/'s tuning part (built by `dvc repro ood`) prepared with each value
given for a constant of stages/lib/prepare.py, one constant at a time, the others as committed:
accuracy over all the tuning draws, and by condition.

    python benchmark/tune_prepare.py data/model/model.keras NOISY_PAPER=0.02,0.03,0.04
"""

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.lib import backend, prepare  # noqa: E402
from stages.lib.drawn import OOD_DIR, read_labels  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("candidates", nargs="+", metavar="CONSTANT=VALUE,VALUE")
    parser.add_argument("--ood", type=Path, default=ROOT / OOD_DIR)
    args = parser.parse_args()
    backend.use(backend.available())
    from stages.lib.model import load_model

    model = load_model(args.model)
    drawn = read_labels(args.ood, "tuning")
    rows = []
    for candidate in args.candidates:
        name, values = candidate.split("=", 1)
        committed = getattr(prepare, name)
        for value in [float(Fraction(value)) for value in values.split(",")]:
            setattr(prepare, name, value)
            digits = [prepare.load_digit_or_none(args.ood / file) for file in drawn["file"]]
            refused = np.array([digit is None for digit in digits])  # a wrong answer
            inputs = np.stack([np.zeros((28, 28)) if digit is None else digit for digit in digits])
            right = model.predict(inputs[..., None], batch_size=1000, verbose=0).argmax(axis=1)
            right = (right == drawn["digit"].to_numpy()) & ~refused
            by_condition = drawn.assign(right=right).groupby("condition", sort=False)["right"]
            rows.append({"constant": name, "value": value, "committed": value == committed,
                         "tuning accuracy": right.mean(), **by_condition.mean().to_dict()})
        setattr(prepare, name, committed)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
