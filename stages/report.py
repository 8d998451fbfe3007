"""Stage report: reports/README.md, the run's results as one page that a Git host shows when
someone opens reports/: headline metrics beside the tutorial's, each epoch, each digit, what
ran, and the figures. Every number comes from the files beside it, so it cannot go stale."""

import json
from pathlib import Path

import pandas as pd

from pydantic import Field

from stages.lib import params
from stages.lib.atomic import atomic_path
from stages.lib.figures import FIGURES

REPORTS_DIR = Path("reports")
README_PATH = REPORTS_DIR / "README.md"


class Tutorial(params.Section):
    test_accuracy: float = Field(ge=0, le=1, description="the 2018 tutorial run's test accuracy, "
                                                         "shown beside each run")
    test_loss: float = Field(ge=0, description="the tutorial run's test loss")
    train_accuracy: float = Field(ge=0, le=1, description="the tutorial run's training-set accuracy")
    train_loss: float = Field(ge=0, description="the tutorial run's training-set loss")


class Params(params.Section):
    tutorial: Tutorial


def read_json(path):
    return json.loads((REPORTS_DIR / path).read_text())


def headline(metrics, tutorial):
    rows = [
        ("test accuracy", metrics["test"]["accuracy"], tutorial["test_accuracy"]),
        ("test loss", metrics["test"]["loss"], tutorial["test_loss"]),
        ("training-set accuracy", metrics["train_set"]["accuracy"], tutorial["train_accuracy"]),
        ("training-set loss", metrics["train_set"]["loss"], tutorial["train_loss"]),
    ]
    table = pd.DataFrame(rows, columns=["", "this run", "the tutorial"]).set_index("")
    return table.to_markdown(floatfmt=".4f")


def ood_score(ood):
    return (f"Accuracy {ood['accuracy']:.4f} (lowest draw {ood['lowest_draw']:.4f}, highest "
            f"{ood['highest_draw']:.4f}; loss {ood['loss']:.4f})")


def not_digits_table():
    """The share of each kind of not-digit that predict refuses."""
    found = pd.read_csv(REPORTS_DIR / "eval/not_digits.csv")
    found.columns = ["kind", "images", "refused", "lowest draw", "highest draw"]
    return found.to_markdown(index=False, floatfmt=["", ".0f", ".4f", ".4f", ".4f"])


def ood_conditions():
    """The out-of-distribution accuracy by how the digits were drawn."""
    drawn = pd.read_csv(REPORTS_DIR / "eval/ood.csv")
    drawn.columns = ["drawn by", "value", "digits", "accuracy", "lowest draw", "highest draw"]
    return drawn.to_markdown(index=False, floatfmt=["", "", ".0f", ".4f", ".4f", ".4f"])


def mnist_c_table():
    scores = pd.read_csv(REPORTS_DIR / "eval/mnist_c.csv")
    return scores.to_markdown(index=False, floatfmt=["", ".4f"])


def epochs():
    """One row an epoch: the curves side by side, then the epoch's speed."""
    curves = []
    for metric in ["loss", "accuracy"]:
        curve = pd.read_csv(REPORTS_DIR / "training" / f"{metric}.csv")
        curve = curve.pivot(index="epoch", columns="measured_on", values=metric)
        curves.append(curve.add_prefix(f"{metric} (").add_suffix(")"))
    speed = pd.read_csv(REPORTS_DIR / "training/speed.csv", index_col="epoch")
    speed.columns = ["seconds", "images a second"]
    table = pd.concat([*curves, speed], axis=1)
    curve_columns = len(table.columns) - len(speed.columns)
    return table.to_markdown(floatfmt=["", *[".4f"] * curve_columns, ".1f", ".0f"])


def time_to(training):
    """The run's seconds of training, and when the validation accuracy first reached each goal."""
    total = f"{training['speed']['training_seconds']:.0f} s of training in all"
    if "validation" not in training:
        return f"{total}; no validation images were held out, so no time to accuracy."
    # evaluate names each goal by its digits: accuracy_99_5 is 0.995.
    reached = [f"0.{key.removeprefix('accuracy_').replace('_', '')}: "
               + ("not reached" if seconds is None else f"{seconds:.0f} s")
               for key, seconds in training["time_to"].items()]
    return f"{total}; time to validation accuracy {', '.join(reached)}."


def digits():
    per_class = pd.read_csv(REPORTS_DIR / "eval/per_class.csv", index_col="digit")
    return per_class.to_markdown(floatfmt=["", ".4f", ".4f", ".4f", ".0f", ".0f"])


def what_ran(record, last_epoch):
    versions = ", ".join(f"{name} {version}" for name, version in record["versions"].items())
    device = record["device"]
    bfloat16 = "with" if device.get("bfloat16") else "without"
    return "\n".join([
        f"- precision: {record['precision']['used']} (asked for "
        f"{record['precision']['requested']})",
        f"- device: {device['count']} {device['type']} ({device['name']}, {bfloat16} bfloat16)",
        f"- XLA: {'on' if record['xla']['used'] else 'off'}; TensorFlow op determinism: "
        f"{'on' if record['op_determinism'] else 'off'}",
        f"- replicas: {record['distribute']['replicas']} ({record['distribute']['requested']})",
        f"- last epoch: {last_epoch['epoch_seconds']:.1f} s, "
        f"{last_epoch['images_per_second']:.0f} training images a second",
        f"- versions: {versions}",
    ])


def render(tutorial):
    metrics = read_json("metrics.json")
    training = read_json("training/metrics.json")
    figures = "\n\n".join(f"![{title}](figures/{name})" for name, title in FIGURES.items())
    return f"""# Results of the last run

Written by the pipeline's report stage (`stages/report.py`) from the files in this folder at
every `dvc repro`: do not edit it by hand. The tutorial's figures are those of the 2018 Keras
run this project reproduces.

## Headline

{headline(metrics, tutorial)}

Misclassified test digits: {metrics['test_misclassified']}; macro F1: {metrics['test_macro_f1']:.4f}.

## Digits that are not MNIST

{ood_score(metrics['ood'])} on the reporting part of the UCI handwritten digits that scikit-learn ships, drawn as users' files: scans of several
sizes, dark on light or light on dark, some blurred, faint or noisy, and phone photos on ruled or
squared paper, under a lamp, in coloured ink, small and off centre, as JPEG (`stages/ood.py`), each
prepared by predict's own code (`stages/lib/prepare.py`). No threshold was tuned on this part
([docs/handwriting.md](../docs/handwriting.md)).

{ood_conditions()}

## Images that are not one digit

Predict refuses {metrics['not_digits']['refused']:.4f} of the reporting part's images that hold
no single digit (`stages/ood.py` draws them as it draws the digits: blank paper, two digits side
by side, scribbles, blobs), with "no single digit found" and the reason where it knows one, and
refuses {metrics['ood']['refused']:.4f} of its real digits (counted as wrong above). The rule was
chosen on the tuning parts ([docs/handwriting.md](../docs/handwriting.md)).

{not_digits_table()}

## Corrupted test digits (MNIST-C)

Mean accuracy {metrics['mnist_c']['mean_accuracy']:.4f} over the corruptions of MNIST-C (Mu and
Gilmer, 2019) applied to the test set at the benchmark's severities (`stages/mnist_c.py`; how
each is made: [docs/robustness.md](../docs/robustness.md)).

{mnist_c_table()}

## Each epoch

Loss and accuracy on the training batches are the running means over each epoch, with dropout
on; on the validation images (when preprocess holds some out) they are measured at its end.
Seconds are of training, the validation pass left out.

{epochs()}

{time_to(training)}

## Each digit (test set)

{digits()}

## What ran

As the train stage recorded it (`run` in [training/metrics.json](training/metrics.json)):

{what_ran(training['run'], training['speed'])}

## Figures

{figures}
"""


def main():
    report = params.load("report", Params)
    with atomic_path(README_PATH) as temporary:
        temporary.write_text(render(report["tutorial"]))
    print(f"report: {README_PATH}")


if __name__ == "__main__":
    main()
