"""Stage evaluate: the recipe's test and training-set scores, plus where the model goes wrong.

Writes reports/metrics.json (headline metrics) and reports/eval/: predictions.csv (one row a
test image, DVC's confusion-matrix source), per_class.csv, misclassified.csv, ood.csv (the score
on the reporting part of the digits that are not MNIST, data/ood/, by how they were drawn) and
mnist_c.csv (the accuracy under each corruption of MNIST-C, data/mnist_c.npz). Publishes the
train stage's log to reports/training/: metrics.json (with time_to), loss.csv, accuracy.csv,
accuracy_by_seconds.csv and speed.csv (see publish_training_log). The model is scored on the
backend that trained it (the run record's `backend`), so train.backend is not one of this
stage's params.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from stages.lib import backend, params
from stages.lib.atomic import atomic_path, write_json
from stages.lib.confusion import confusion_counts
from stages.lib.mnist_c_file import load_corrupted
from stages.lib.drawn import OOD_DIR, read_labels, read_not_digits
from stages.lib.prepare import load_digit_or_none
from stages.lib.splits import MODEL_PATH, NUM_CLASSES, load_split

TRAIN_LOG_DIR = Path("data/train_log")
METRICS_PATH = Path("reports/metrics.json")
EVAL_DIR = Path("reports/eval")
TRAINING_DIR = Path("reports/training")


class Params(params.Section):
    batch_size: int = Field(ge=1, description="images a prediction batch (no effect on the scores)")


def score_stored_images(model, images, labels, batch_size):
    """Loss and accuracy of the trained model on stored uint8 images (see score_model_inputs)."""
    from stages.lib.model import model_inputs

    inputs, one_hot = model_inputs(images, labels)
    return score_model_inputs(model, inputs, one_hot, batch_size)


def score_model_inputs(model, inputs, one_hot, batch_size):
    """Loss and accuracy of the trained model (dropout and augmentation off, plain cross-entropy
    without label smoothing, probabilities clipped as Keras clips them), plus the probabilities
    behind them."""
    import keras

    probabilities = model.predict(inputs, batch_size=batch_size, verbose=0)
    loss = float(keras.losses.CategoricalCrossentropy()(one_hot, probabilities))
    accuracy = float(np.mean(probabilities.argmax(axis=1) == one_hot.argmax(axis=1)))
    return loss, accuracy, probabilities


def ood_scores(model, folder, batch_size):
    """Loss and accuracy on the reporting part of the drawn digits of `folder`, each prepared by
    predict's own code from its image file (a digit predict refuses counts as wrong, and outside
    the loss): the accuracy of each draw, the share refused, and by how the digits were drawn
    (one row a condition, polarity and canvas size: all draws together, and the lowest and
    highest draw)."""
    drawn = read_labels(folder, "reporting")
    digits = [load_digit_or_none(folder / name) for name in drawn["file"]]
    drawn["refused"] = [digit is None for digit in digits]
    read = drawn[~drawn["refused"]]
    inputs = np.stack([digit for digit in digits if digit is not None])[..., None]
    one_hot = np.eye(NUM_CLASSES, dtype="float32")[read["digit"]]
    loss, _, probabilities = score_model_inputs(model, inputs, one_hot, batch_size)
    drawn["right"] = False
    drawn.loc[read.index, "right"] = probabilities.argmax(axis=1) == read["digit"].to_numpy()
    groups = []
    for column in ["condition", "polarity", "size"]:
        group = drawn.groupby(column, sort=False)["right"].agg(images="size", accuracy="mean")
        each_draw = drawn.groupby([column, "draw"], sort=False)["right"].mean().groupby(level=0)
        group["lowest_draw"], group["highest_draw"] = each_draw.min(), each_draw.max()
        groups.append(group.rename_axis("value").reset_index().assign(drawn_by=column))
    by_condition = pd.concat(groups)[["drawn_by", "value", "images", "accuracy", "lowest_draw",
                                      "highest_draw"]].round(4)
    return loss, drawn.groupby("draw")["right"].mean(), float(drawn["refused"].mean()), by_condition


def not_digit_scores(folder):
    """The share of the reporting part's not-digits that predict refuses, by kind (all draws
    together, and the lowest and highest draw)."""
    found = read_not_digits(folder, "reporting")
    found["refused"] = [load_digit_or_none(folder / name) is None for name in found["file"]]
    by_kind = found.groupby("kind", sort=False)["refused"].agg(images="size", refused="mean")
    each_draw = found.groupby(["kind", "draw"], sort=False)["refused"].mean().groupby(level=0)
    by_kind["lowest_draw"], by_kind["highest_draw"] = each_draw.min(), each_draw.max()
    return float(found["refused"].mean()), by_kind.reset_index().round(4)


def mnist_c_scores(model, batch_size):
    """Accuracy on the test set under each of MNIST-C's corruptions, in the mnist_c stage's order."""
    labels, corrupted = load_corrupted()
    rows = [(name, score_stored_images(model, images, labels, batch_size)[1])
            for name, images in corrupted.items()]
    return pd.DataFrame(rows, columns=["corruption", "accuracy"]).round(4)


def per_class_scores(predictions):
    """Precision, recall, F1, support and misclassified test digits (errors) of each digit, from
    the confusion counts."""
    confusion = confusion_counts(predictions)
    true_positives = np.diag(confusion)
    support = confusion.sum(axis=1)
    precision = true_positives / confusion.sum(axis=0).replace(0, np.nan)
    recall = true_positives / support.replace(0, np.nan)
    f1 = 2 * precision * recall / (precision + recall)
    scores = pd.DataFrame({"precision": precision, "recall": recall, "f1": f1,
                           "support": support, "errors": support - true_positives})
    return scores.fillna(0.0).rename_axis("digit").round(4)


def write_csv(frame, path, **options):
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, **options)


def log_file(folder, metric):
    return TRAIN_LOG_DIR / "plots/metrics" / folder / f"{metric}.tsv"


def logged(folder, metric):
    """One row an epoch of what train logged with DVCLive as folder/metric."""
    log = pd.read_csv(log_file(folder, metric), sep="\t")
    return pd.DataFrame({"epoch": log["step"] + 1, metric: log[metric]})


def epoch_curve(metric):
    """One row an epoch and set of images measured on: the training batches (dropout on, the
    running mean over the epoch) and, when preprocess held some out, the validation images."""
    curves = []
    for folder, measured_on in [("training_batches", "training batches"),
                                ("validation", "validation images")]:
        if log_file(folder, metric).exists():
            curve = logged(folder, metric)
            curve.insert(1, "measured_on", measured_on)
            curves.append(curve)
    return pd.concat(curves, ignore_index=True)


# Validation accuracies whose first arrival each run records, in seconds of training.
TIME_TO_ACCURACIES = {"accuracy_99": 0.99, "accuracy_99_5": 0.995, "accuracy_99_7": 0.997}


def time_to(validation_accuracy, training_seconds):
    """The seconds of training (validation left out) at the end of the first epoch whose
    validation accuracy reached each of TIME_TO_ACCURACIES; None where no epoch did, or where no
    images were held out."""
    curve = validation_accuracy.merge(training_seconds, on="epoch")
    reached = {name: curve.loc[curve["accuracy"] >= goal, "training_seconds"]
               for name, goal in TIME_TO_ACCURACIES.items()}
    return {name: float(seconds.min()) if len(seconds) else None
            for name, seconds in reached.items()}


def publish_training_log():
    """Publish train's DVCLive log to git: the last epoch, speed and run record as it is, with
    the time to each validation accuracy (time_to) added; the curves one row an epoch, training
    and validation rows together so one chart draws both, by epoch and by seconds of training.

    Train keeps its own copy DVC-cached: `dvc push --run-cache` carries cached outputs only, so a
    git-tracked output of train would stop a teammate's restore of it. This copy is git-tracked,
    so a clone without the cache or remote still shows, diffs and plots the whole run.
    """
    curves = {metric: epoch_curve(metric) for metric in ["loss", "accuracy"]}
    for metric, curve in curves.items():
        write_csv(curve, TRAINING_DIR / f"{metric}.csv", index=False)
    speed = logged("speed", "epoch_seconds").merge(logged("speed", "images_per_second"))
    write_csv(speed, TRAINING_DIR / "speed.csv", index=False)
    seconds = logged("speed", "training_seconds")
    by_seconds = curves["accuracy"].merge(seconds, on="epoch")
    write_csv(by_seconds[["training_seconds", "measured_on", "accuracy"]],
              TRAINING_DIR / "accuracy_by_seconds.csv", index=False)
    validation = by_seconds[by_seconds["measured_on"] == "validation images"]
    log = json.loads((TRAIN_LOG_DIR / "metrics.json").read_text())
    log["time_to"] = time_to(validation[["epoch", "accuracy"]], seconds)
    write_json(TRAINING_DIR / "metrics.json", log)


def main():
    evaluate = params.load("evaluate", Params)
    backend.use(json.loads((TRAIN_LOG_DIR / "metrics.json").read_text())["run"]["backend"])
    from stages.lib.model import load_model

    model = load_model(MODEL_PATH)
    test_images, test_labels = load_split("test")
    train_images, train_labels = load_split("train")

    test_loss, test_accuracy, probabilities = score_stored_images(
        model, test_images, test_labels, evaluate["batch_size"]
    )
    train_loss, train_accuracy, _ = score_stored_images(model, train_images, train_labels,
                                                        evaluate["batch_size"])
    ood_loss, ood_each_draw, ood_refused, ood_by_condition = ood_scores(
        model, OOD_DIR, evaluate["batch_size"])
    not_digits_refused, not_digits_by_kind = not_digit_scores(OOD_DIR)
    by_corruption = mnist_c_scores(model, evaluate["batch_size"])

    predictions = pd.DataFrame(
        {
            "image": np.arange(len(test_labels)),
            "actual": test_labels,
            "predicted": probabilities.argmax(axis=1),
            "probability": probabilities.max(axis=1).round(4),
        }
    )
    misclassified = predictions[predictions["actual"] != predictions["predicted"]]
    scores = per_class_scores(predictions)

    write_csv(predictions, EVAL_DIR / "predictions.csv", index=False)
    write_csv(misclassified, EVAL_DIR / "misclassified.csv", index=False)
    write_csv(scores, EVAL_DIR / "per_class.csv")
    write_csv(ood_by_condition, EVAL_DIR / "ood.csv", index=False)
    write_csv(not_digits_by_kind, EVAL_DIR / "not_digits.csv", index=False)
    write_csv(by_corruption, EVAL_DIR / "mnist_c.csv", index=False)
    metrics = {
        "test": {"loss": round(test_loss, 6), "accuracy": test_accuracy},
        # The trained model on the whole training set; the running means over the training
        # batches are reports/training/metrics.json's training_batches.
        "train_set": {"loss": round(train_loss, 6), "accuracy": train_accuracy},
        "test_macro_f1": round(float(scores["f1"].mean()), 4),
        "test_misclassified": len(misclassified),
        # Digits that are not MNIST, drawn as users' image files (stages/ood.py): the reporting
        # part, the mean over its draws and the lowest and highest draw.
        "ood": {"loss": round(ood_loss, 6), "accuracy": round(float(ood_each_draw.mean()), 4),
                "lowest_draw": round(float(ood_each_draw.min()), 4),
                "highest_draw": round(float(ood_each_draw.max()), 4),
                "refused": round(ood_refused, 4)},
        # Images of the reporting part that hold no single digit (blank paper, two digits,
        # scribbles, blobs): the share that predict refuses; by kind in not_digits.csv.
        "not_digits": {"refused": round(not_digits_refused, 4)},
        # The test set under MNIST-C's corruptions (stages/mnist_c.py); each in mnist_c.csv.
        "mnist_c": {"mean_accuracy": round(float(by_corruption["accuracy"].mean()), 4)},
    }
    write_json(METRICS_PATH, metrics)
    publish_training_log()
    print(f"evaluate: test accuracy {test_accuracy:.4f}, loss {test_loss:.4f}; "
          f"training-set accuracy {train_accuracy:.4f}, loss {train_loss:.4f}; "
          f"out-of-distribution accuracy {metrics['ood']['accuracy']:.4f}; "
          f"MNIST-C mean accuracy {metrics['mnist_c']['mean_accuracy']:.4f}")


if __name__ == "__main__":
    main()
