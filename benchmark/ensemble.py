"""Whether averaging trained models' probabilities reads digits better than one model: the models
of the given experiments (any Git revision or experiment name) scored alone and averaged, each
group of them and all groups together, on the tuning data (the validation part, the drawn
digits' tuning part), where a choice is made, and on the reporting data (MNIST's test set, the
drawn digits' reporting part, MNIST-C's mean), where it is reported. Averaging is what
keras.layers.Average does in a model that holds the members, so a group averaged scores as such
a saved model would.

Each model comes from the DVC cache through dvc.api (an experiment's name is a revision); so do
the validation part and the test set, from each model's revision (all members must share one
validation part). The drawn digits and MNIST-C are the workspace's (`dvc repro ood mnist_c`).
Each member's reporting scores are printed beside those its run recorded: they match when the
workspace's drawn digits and MNIST-C are those it was evaluated on.

    python benchmark/ensemble.py photo=EXP1,EXP2,EXP3 handwriting=EXP4,EXP5,EXP6
"""

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.lib import backend  # noqa: E402
from stages.lib.drawn import OOD_DIR, read_labels  # noqa: E402
from stages.lib.mnist_c_file import load_corrupted  # noqa: E402
from stages.lib.prepare import load_digit_or_none  # noqa: E402
from stages.lib.splits import MODEL_PATH, PREPARED_DIR  # noqa: E402


def read_from(revision, path):
    import dvc.api

    with dvc.api.open(str(path), repo=str(ROOT), rev=revision, mode="rb") as stored:
        return stored.read()


def load_model_of(revision):
    from stages.lib.model import load_model

    with tempfile.NamedTemporaryFile(suffix=".keras") as copy:
        copy.write(read_from(revision, MODEL_PATH))
        copy.flush()
        return load_model(copy.name)


def split_of(revision, name):
    with np.load(io.BytesIO(read_from(revision, PREPARED_DIR / f"{name}.npz"))) as arrays:
        return arrays["images"], arrays["labels"]


def drawn_part(part):
    """The part's images as predict prepares them (a refused file: a blank image, and marked so
    that it counts as wrong), its labels and draws."""
    drawn = read_labels(ROOT / OOD_DIR, part)
    digits = [load_digit_or_none(ROOT / OOD_DIR / file) for file in drawn["file"]]
    refused = np.array([digit is None for digit in digits])
    images = np.stack([np.zeros((28, 28), "float32") if digit is None else digit
                       for digit in digits])
    return images[..., None], drawn["digit"].to_numpy(), drawn["draw"].to_numpy(), refused


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", metavar="GROUP=REV,REV,...")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    groups = {name: revisions.split(",")
              for name, revisions in (group.split("=", 1) for group in args.groups)}
    members = [revision for revisions in groups.values() for revision in revisions]

    backend.use("tensorflow")
    from stages.lib.model import model_inputs

    def scaled(images):
        return model_inputs(images, np.zeros(len(images), "uint8"))[0]

    validation = {revision: split_of(revision, "validation") for revision in members}
    if len({labels.tobytes() + images.tobytes() for images, labels in validation.values()}) > 1:
        raise SystemExit("ensemble: the members' validation parts differ; averaging them would "
                         "score some members on images they trained on")
    validation_images, validation_labels = validation[members[0]]
    test_images, test_labels = split_of(members[0], "test")
    corruption_labels, corrupted = load_corrupted()
    drawn = {part: drawn_part(part) for part in ("tuning", "reporting")}
    inputs = {"validation": scaled(validation_images), "test": scaled(test_images),
              **{f"drawn {part}": images for part, (images, *_) in drawn.items()},
              **{f"MNIST-C {name}": scaled(images) for name, images in corrupted.items()}}

    probabilities = {}
    for revision in members:
        model = load_model_of(revision)
        probabilities[revision] = {name: model.predict(images, batch_size=args.batch_size,
                                                       verbose=0)
                                   for name, images in inputs.items()}
        print(f"ensemble: scored {revision}", file=sys.stderr)

    def drawn_scores(predicted, part):
        _, labels, draws, refused = drawn[part]
        right = pd.Series((predicted.argmax(axis=1) == labels) & ~refused)
        each_draw = right.groupby(draws).mean()
        return float(each_draw.mean()), float(each_draw.min()), float(each_draw.max())

    def scores(revisions):
        average = {name: np.mean([probabilities[revision][name] for revision in revisions],
                                 axis=0) for name in inputs}

        def accuracy(name, labels):
            return float(np.mean(average[name].argmax(axis=1) == labels))

        drawn_reporting = drawn_scores(average["drawn reporting"], "reporting")
        return {
            "validation": accuracy("validation", validation_labels),
            "drawn tuning": drawn_scores(average["drawn tuning"], "tuning")[0],
            "test": accuracy("test", test_labels),
            "drawn reporting": drawn_reporting[0],
            "drawn lowest": drawn_reporting[1], "drawn highest": drawn_reporting[2],
            "MNIST-C": float(np.mean([accuracy(f"MNIST-C {name}", corruption_labels)
                                      for name in corrupted])),
        }

    alone = {revision: scores([revision]) for revision in members}
    for revision, measured in alone.items():
        recorded = json.loads(read_from(revision, "reports/metrics.json"))
        print(f"{revision}: test {measured['test']:.4f} (recorded "
              f"{recorded['test']['accuracy']:.4f}), drawn {measured['drawn reporting']:.4f} "
              f"({recorded['ood']['accuracy']:.4f}), MNIST-C {measured['MNIST-C']:.4f} "
              f"({recorded['mnist_c']['mean_accuracy']:.4f})")

    rows = []
    for name, revisions in groups.items():
        each = pd.DataFrame([alone[revision] for revision in revisions])
        rows.append({"models": f"{name}: each alone, mean of {len(revisions)}",
                     **each.mean().to_dict()})
        rows.append({"models": f"{name}: {len(revisions)} averaged", **scores(revisions)})
    if len(groups) > 1:
        rows.append({"models": f"{' + '.join(groups)}: {len(members)} averaged",
                     **scores(members)})
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
