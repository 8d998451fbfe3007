"""Figures shared by the plot stage, the report stage and the compare command: the figures plot
draws, the tutorial's digit grid, and saving a figure whole or not at all."""

import math

import matplotlib.pyplot as plt

from stages.lib.atomic import atomic_path

# Every PNG the plot stage writes, with its caption on the report stage's page, in the page's order.
FIGURES = {
    "training_curves.png": "Loss and accuracy each epoch",
    "confusion_matrix.png": "Confusion matrix of the test set (log colour scale)",
    "misclassified.png": "Misclassified test digits, most confident first",
    "test_predictions.png": "Test digits with the model's answers (errors in red)",
    "train_digits.png": "Training digits",
    "mnist_c.png": "Test accuracy under each MNIST-C corruption",
    "mnist_c_examples.png": "A test digit under each MNIST-C corruption",
}


def save(figure, path):
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80)
    plt.close(figure)
    print(f"plot: {path}")


def digit_grid(images, titles, title_colors):
    """The tutorial's picture: a square grid of uint8 digits, gray_r, no axes, a title on each.
    The gray scale is fixed, 0 white to 255 black, so that a faint or brightened digit shows so."""
    side = max(1, math.ceil(len(titles) ** 0.5))
    figure, axes = plt.subplots(side, side, figsize=(1.2 * side, 1.4 * side), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(titles):
            axis.imshow(images[index], cmap="gray_r", vmin=0, vmax=255)
            axis.set_title(titles[index], fontsize=8, color=title_colors[index])
    figure.tight_layout()
    return figure
