"""How often `python -m stages.commands.predict` is right on test digits redrawn as users' image files.

The first N test digits are redrawn as tests/test_predict.py does (scaled up, off-centre, dark
on light or light on dark, RGB/RGBA, PNG/JPEG/BMP), then each model classifies the folder
through the real command. Needs data/prepared/ (run `dvc repro preprocess` first).

    python benchmark/predict_agreement.py --digits 1000 seed=data/model/model.keras strong=strong.keras
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.lib import backend  # noqa: E402

backend.use(backend.available())
from stages.lib.model import load_model, model_inputs  # noqa: E402
from stages.lib.splits import load_split  # noqa: E402
from tests.test_predict import redraw  # noqa: E402


def classify(model_path, folder):
    result = subprocess.run(
        [sys.executable, "-m", "stages.commands.predict", "--json", "--model", model_path, folder],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
    )
    if result.returncode != 0:
        sys.exit(f"predict failed with {model_path}:\n{result.stderr[-2000:]}")
    predictions = json.loads(result.stdout)
    return np.array([p["digit"] for p in sorted(predictions, key=lambda p: p["file"])])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=PATH")
    parser.add_argument("--digits", type=int, default=1000)
    args = parser.parse_args()
    images, labels = load_split("test")
    images, labels = images[: args.digits], labels[: args.digits]

    with tempfile.TemporaryDirectory() as folder:
        redraw(images, Path(folder))
        for name, path in (model.split("=", 1) for model in args.models):
            model = load_model(path)
            original = model.predict(model_inputs(images, labels)[0], verbose=0).argmax(axis=1)
            redrawn = classify(path, folder)
            print(f"{name}: {model.count_params():,} parameters; of {len(labels)} test digits, "
                  f"right as 28x28 originals {np.sum(original == labels)}, "
                  f"right as user images {np.sum(redrawn == labels)}, "
                  f"same answer on both {np.sum(redrawn == original)}")


if __name__ == "__main__":
    main()
