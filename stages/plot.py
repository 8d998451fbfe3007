"""Stage plot: the tutorial's two digit grids, training curves, the confusion matrix, the
misclassified digits and MNIST-C (a digit under each corruption, the accuracy under each), as PNGs
in reports/figures/."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import SymLogNorm
from pydantic import Field, field_validator

from stages.lib import params
from stages.lib.confusion import confusion_counts
from stages.lib.figures import FIGURES, digit_grid, save
from stages.lib.mnist_c_file import load_corrupted
from stages.lib.splits import NUM_CLASSES, load_split

TRAINING_DIR = Path("reports/training")
PREDICTIONS_PATH = Path("reports/eval/predictions.csv")
MNIST_C_SCORES_PATH = Path("reports/eval/mnist_c.csv")
FIGURES_DIR = Path("reports/figures")


def save_figure(figure, name):
    """One of FIGURES, into FIGURES_DIR."""
    if name not in FIGURES:
        raise KeyError(f"{name}: give it a caption in FIGURES, for the report page")
    save(figure, FIGURES_DIR / name)


def training_curves():
    """Loss and accuracy for each epoch: on the training batches, and on the validation images
    on the same chart when preprocess held some out."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ["loss", "accuracy"]):
        curves = pd.read_csv(TRAINING_DIR / f"{metric}.csv")
        for measured_on, curve in curves.groupby("measured_on", sort=False):
            axis.plot(curve["epoch"], curve[metric], marker="o", label=measured_on)
        axis.set(xlabel="epoch", ylabel=metric, title=metric)
        axis.legend()
    figure.tight_layout()
    return figure


def confusion_heatmap(predictions):
    counts = confusion_counts(predictions)
    figure, axis = plt.subplots(figsize=(7, 6))
    # A logarithmic colour scale, so a cell of 2 errors shows beside the diagonal's ~1,000; the
    # colour bar stays in counts. Below 1 it turns linear, where the empty cells are.
    image = axis.imshow(counts.to_numpy(), cmap="Blues", norm=SymLogNorm(linthresh=1, base=10))
    for (actual, predicted), count in np.ndenumerate(counts.to_numpy()):
        if count:
            color = "white" if actual == predicted else "black"
            axis.text(predicted, actual, count, ha="center", va="center", fontsize=8, color=color)
    axis.set(xticks=range(NUM_CLASSES), yticks=range(NUM_CLASSES), xlabel="predicted",
             ylabel="actual", title="Confusion matrix (test set)")
    figure.colorbar(image, ticks=[0, 1, 10, 100, 1000], format="%d", label="test digits (log scale)")
    figure.tight_layout()
    save_figure(figure, "confusion_matrix.png")


def mnist_c_bars(predictions):
    """Accuracy under each corruption, the clean test set's as a line to compare with."""
    scores = pd.read_csv(MNIST_C_SCORES_PATH)
    clean = float(np.mean(predictions["actual"] == predictions["predicted"]))
    figure, axis = plt.subplots(figsize=(7, 0.3 * len(scores) + 1.5))
    axis.barh(scores["corruption"], scores["accuracy"], color="tab:blue")
    axis.axvline(clean, color="black", linestyle="--", label=f"no corruption ({clean:.4f})")
    for row, accuracy in enumerate(scores["accuracy"]):
        axis.text(accuracy, row, f" {accuracy:.3f}", va="center", fontsize=8)
    axis.invert_yaxis()  # the benchmark's order, top to bottom
    axis.set(xlim=(0, 1.12), xlabel="test accuracy",
             title=f"MNIST-C: mean accuracy {scores['accuracy'].mean():.4f}")
    axis.legend(loc="lower right")
    figure.tight_layout()
    save_figure(figure, "mnist_c.png")


def mnist_c_examples(test_images, rng):
    """One test digit as it is, then under each corruption (mnist_c.count may have corrupted
    only the first test digits)."""
    labels, corrupted = load_corrupted()
    index = int(rng.integers(len(labels)))
    images = [test_images[index], *(images[index] for images in corrupted.values())]
    titles = ["no corruption", *corrupted]
    save_figure(digit_grid(images, titles, ["black"] * len(titles)), "mnist_c_examples.png")


class Params(params.Section):
    grid_size: int = Field(ge=1, description="digits in each picture grid",
                           json_schema_extra={"allowed": "a square integer (16, 100, ...)"})
    seed: int = params.Seed("which digits the grids show")

    @field_validator("grid_size")
    @classmethod
    def square(cls, grid_size):
        if round(grid_size**0.5) ** 2 != grid_size:
            raise ValueError("must be a square number (100 = 10x10)")
        return grid_size


def main():
    plot = params.load("plot", Params)
    plt.switch_backend("Agg")  # files only: no display on a CI machine or a server
    train_images, train_labels = load_split("train")
    test_images, _ = load_split("test")
    predictions = pd.read_csv(PREDICTIONS_PATH)
    rng = np.random.default_rng(plot["seed"])
    grid_size = plot["grid_size"]

    shown = rng.choice(len(train_images), min(grid_size, len(train_images)), replace=False)
    titles = [f"actual:{label}" for label in train_labels[shown]]
    save_figure(digit_grid(train_images[shown], titles, ["black"] * len(shown)), "train_digits.png")

    shown = predictions.iloc[rng.choice(len(predictions), min(grid_size, len(predictions)), replace=False)]
    titles = [f"actual:{row.actual}\npredict:{row.predicted}" for row in shown.itertuples()]
    colors = ["red" if row.actual != row.predicted else "black" for row in shown.itertuples()]
    save_figure(digit_grid(test_images[shown["image"]], titles, colors), "test_predictions.png")

    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    wrong = wrong.sort_values("probability", ascending=False).head(grid_size)
    titles = [f"actual:{row.actual}\npredict:{row.predicted} ({row.probability:.2f})"
              for row in wrong.itertuples()]
    save_figure(digit_grid(test_images[wrong["image"]], titles, ["red"] * len(wrong)),
                "misclassified.png")

    save_figure(training_curves(), "training_curves.png")
    confusion_heatmap(predictions)
    mnist_c_bars(predictions)
    mnist_c_examples(test_images, rng)


if __name__ == "__main__":
    main()
