"""Stage plot: the tutorial's two digit grids, training curves, the confusion matrix and the
misclassified digits, as PNGs in reports/figures/."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a CI machine or a server
import matplotlib.pyplot as plt
from matplotlib.colors import SymLogNorm
import numpy as np
import pandas as pd

from stages import params
from stages.atomic import atomic_path
from stages.data import NUM_CLASSES, confusion_counts, load_split

TRAINING_DIR = Path("reports/training")
PREDICTIONS_PATH = Path("reports/eval/predictions.csv")
FIGURES_DIR = Path("reports/figures")
# Every PNG this stage writes, with its caption on the report stage's page, in the page's order.
FIGURES = {
    "training_curves.png": "Loss and accuracy each epoch",
    "confusion_matrix.png": "Confusion matrix of the test set (log colour scale)",
    "misclassified.png": "Misclassified test digits, most confident first",
    "test_predictions.png": "Test digits with the model's answers (errors in red)",
    "train_digits.png": "Training digits",
}


def save(figure, path):
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80)
    plt.close(figure)
    print(f"plot: {path}")


def save_figure(figure, name):
    """One of this stage's FIGURES, into FIGURES_DIR."""
    if name not in FIGURES:
        raise KeyError(f"{name}: give it a caption in FIGURES, for the report page")
    save(figure, FIGURES_DIR / name)


def digit_grid(images, titles, title_colors):
    """The tutorial's picture: a square grid of digits, gray_r, no axes, a title on each."""
    side = max(1, math.ceil(len(titles) ** 0.5))
    figure, axes = plt.subplots(side, side, figsize=(1.2 * side, 1.4 * side), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(titles):
            axis.imshow(images[index], cmap="gray_r")
            axis.set_title(titles[index], fontsize=8, color=title_colors[index])
    figure.tight_layout()
    return figure


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


def main():
    plot = params.load("plot")
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


if __name__ == "__main__":
    main()
