"""Test-time shifts chosen on the validation part: a trained model's validation accuracy without
them and with each shift (train.test_time_shift), never the test set.

Makes the validation part as the recipes do (preprocess.validation_split 0.1, preprocess.seed 42)
by running the preprocess stage in a scratch folder on data/raw/, then scores the model. A model
saved with test-time shifts is scored through the CNN inside it.

    python benchmark/test_time_shifts.py MODEL.keras [--shifts 0,1,2]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def validation_part(scratch):
    """data/prepared/validation.npz of the recipes' validation part, made in `scratch`."""
    (scratch / "data").mkdir()
    (scratch / "data/raw").symlink_to(ROOT / "data/raw")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["preprocess"].update(train_limit=None, validation_split=0.1, seed=42)
    (scratch / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run([sys.executable, "-m", "stages.preprocess"], cwd=scratch, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    return scratch / "data/prepared/validation.npz"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--shifts", default="0,1,2")
    args = parser.parse_args()

    from stages.lib import backend
    backend.use("tensorflow")
    import numpy as np

    from stages.lib.model import load_model, model_inputs, with_test_time_shifts

    model = load_model(args.model.resolve())
    cnn = next((layer for layer in model.layers if layer.name == "mnist_cnn"), model)
    with tempfile.TemporaryDirectory() as scratch:
        with np.load(validation_part(Path(scratch))) as part:
            images, labels = model_inputs(part["images"], part["labels"])
    print(f"{args.model}: {len(images)} validation images")
    for shift in map(int, args.shifts.split(",")):
        predicted = with_test_time_shifts(cnn, shift).predict(images, batch_size=1000, verbose=0)
        right = predicted.argmax(axis=1) == labels.argmax(axis=1)
        print(f"test_time_shift {shift}: validation accuracy {right.mean():.4f} "
              f"({(~right).sum()} wrong)")


if __name__ == "__main__":
    main()
