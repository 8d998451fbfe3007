"""The real `dvc repro` on a small slice, in a fresh git repository holding a copy of the project."""

import json

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from stages import plot
from stages.lib.model import load_model
from stages.lib.prepare import ImageError, load_digit
from tests.conftest import MNIST_C_DIGITS, OOD_DIGITS, make_project, run, run_capturing, set_params, stages_run

pytestmark = pytest.mark.slow

FIGURES = ["confusion_matrix.png", "misclassified.png", "mnist_c.png", "mnist_c_examples.png",
           "test_predictions.png", "train_digits.png", "training_curves.png"]


def readable(path):
    """The digit predict makes of a file, or None where it refuses it."""
    try:
        return load_digit(path)
    except ImageError:
        return None


def test_repro_builds_everything_then_reruns_only_what_changed(tmp_path, mnist_mirror):
    project = tmp_path / "project"
    env = make_project(project, *mnist_mirror, **{"preprocess.train_limit": 2000, "train.epochs": 1})

    first, log = run_capturing(["dvc", "repro"], project, env)
    assert sorted(stages_run(first)) == sorted(
        ["fetch", "preprocess", "ood", "mnist_c", "train", "evaluate", "plot", "report"])
    assert "Compiled cluster using XLA" not in first + log

    assert len(list((project / "data/raw").glob("*.gz"))) == 4
    assert sorted(p.name for p in (project / "data/prepared").iterdir()) == [
        "test.npz", "train.npz", "validation.npz"]
    drawn = pd.read_csv(project / "data/ood/labels.csv")
    draws = 3  # ood.draws' default
    assert len(drawn) == OOD_DIGITS * 2 * draws == len(list((project / "data/ood").iterdir())) - 2
    assert (project / "data/model/model.keras").stat().st_size > 3_000_000
    losses = pd.read_csv(project / "reports/training/loss.csv")
    assert list(losses["epoch"]) == [1] and list(losses["measured_on"]) == ["training batches"]
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert 0.3 < metrics["test"]["accuracy"] <= 1 and metrics["test"]["loss"] > 0
    assert 0.3 < metrics["train_set"]["accuracy"] <= 1
    # The out-of-distribution score: each digit of the reporting part through predict's own
    # preparation, the mean over the draws and the lowest and highest draw.
    ood = pd.read_csv(project / "reports/eval/ood.csv")
    assert set(ood["drawn_by"]) == {"condition", "polarity", "size"}
    assert (ood.groupby("drawn_by")["images"].sum() == OOD_DIGITS * draws).all()
    assert (ood["lowest_draw"] <= ood["accuracy"]).all() and (ood["accuracy"] <= ood["highest_draw"]).all()
    reporting = drawn[drawn["part"] == "reporting"]
    model = keras.models.load_model(project / "data/model/model.keras")
    digits = [readable(project / "data/ood" / name) for name in reporting["file"]]
    refused = np.array([digit is None for digit in digits])
    inputs = np.stack([np.zeros((28, 28)) if digit is None else digit for digit in digits])
    right = (model.predict(inputs[..., None], verbose=0).argmax(axis=1) == reporting["digit"]) & ~refused
    each_draw = right.groupby(reporting["draw"]).mean()
    assert metrics["ood"]["accuracy"] == pytest.approx(right.mean(), abs=1e-4)
    assert metrics["ood"]["lowest_draw"] == pytest.approx(each_draw.min(), abs=1e-4)
    assert metrics["ood"]["highest_draw"] == pytest.approx(each_draw.max(), abs=1e-4)
    assert metrics["ood"]["loss"] > 0
    assert metrics["ood"]["refused"] == pytest.approx(refused.mean(), abs=1e-4)
    # What is not one digit: the share of the reporting part's that predict refuses.
    not_digits = pd.read_csv(project / "data/ood/not_digits/labels.csv").query("part == 'reporting'")
    not_refused = [readable(project / "data/ood/not_digits" / name) is None
                   for name in not_digits["file"]]
    assert metrics["not_digits"]["refused"] == pytest.approx(np.mean(not_refused), abs=1e-4)
    by_kind = pd.read_csv(project / "reports/eval/not_digits.csv").set_index("kind")
    assert by_kind.loc["pair", "images"] == (not_digits["kind"] == "pair").sum()
    # MNIST-C: each corruption's test accuracy, and their mean.
    with np.load(project / "data/mnist_c.npz") as corrupted:
        assert len(corrupted.files) == 1 + 15
        rotated, labels = corrupted["rotate"], corrupted["labels"]
    assert len(labels) == MNIST_C_DIGITS
    by_corruption = pd.read_csv(project / "reports/eval/mnist_c.csv")
    assert len(by_corruption) == 15
    rotate_right = model.predict(rotated[..., None] / 255, verbose=0).argmax(axis=1) == labels
    assert by_corruption.set_index("corruption").loc["rotate", "accuracy"] == pytest.approx(
        rotate_right.mean(), abs=1e-4)
    assert metrics["mnist_c"]["mean_accuracy"] == pytest.approx(by_corruption["accuracy"].mean(),
                                                                abs=1e-4)
    predictions = pd.read_csv(project / "reports/eval/predictions.csv")
    assert list(predictions.columns) == ["image", "actual", "predicted", "probability"]
    assert (predictions["actual"] == predictions["predicted"]).mean() == metrics["test"]["accuracy"]
    misclassified = pd.read_csv(project / "reports/eval/misclassified.csv")
    assert len(misclassified) == metrics["test_misclassified"]
    per_class = pd.read_csv(project / "reports/eval/per_class.csv")
    assert list(per_class["digit"]) == list(range(10)) and per_class["support"].sum() == len(predictions)
    assert sorted(p.name for p in (project / "reports/figures").iterdir()) == FIGURES
    training = json.loads((project / "reports/training/metrics.json").read_text())
    assert training["step"] == 0 and training["speed"]["images_per_second"] > 0
    assert training["run"]["op_determinism"] is True
    assert training["run"]["xla"] == {"requested": False, "used": False}
    assert run(["dvc", "metrics", "show", "--json"], project, env).count("accuracy") >= 3

    second = run(["dvc", "repro"], project, env)
    assert stages_run(second) == [] and "Data and pipelines are up to date." in second

    set_params(project, **{"plot.seed": 7})
    assert stages_run(run(["dvc", "repro"], project, env)) == ["plot", "report"]

    # What every other change reruns is checked against dvc status in test_reruns.py.

    run(["dvc", "plots", "show", "--out", "plots_page"], project, env)
    page = (project / "plots_page/index.html").read_text()
    assert "confusion" in page.lower() and "training_curves.png" in page


def test_xla_compiles_and_the_run_records_what_it_gave_up(tmp_path, tiny_mirror):
    project = tmp_path / "project"
    env = make_project(project, *tiny_mirror, **{"train.epochs": 1, "train.xla": True})

    output, log = run_capturing(["dvc", "repro", "train"], project, env)

    assert "Compiled cluster using XLA" in output + log  # TensorFlow's own word
    assert "op determinism is off" in output
    run_record = json.loads((project / "data/train_log/metrics.json").read_text())["run"]
    assert run_record["xla"] == {"requested": True, "used": True}
    assert run_record["op_determinism"] is False


def test_validation_curves_by_epoch_and_seconds_and_a_shift_averaged_model(tmp_path, tiny_mirror, monkeypatch):
    project = tmp_path / "project"
    env = make_project(project, *tiny_mirror,
                       **{"train.epochs": 2, "preprocess.validation_split": 0.2,
                          "train.test_time_shift": 2})

    run(["dvc", "repro", "evaluate"], project, env)  # which writes the curves' files

    # Saved averaging the image and four copies moved two pixels (test_model checks the sums).
    saved = load_model(project / "data/model/model.keras")
    assert sorted((layer.rows, layer.columns) for layer in saved.layers
                  if type(layer).__name__ == "Shifted") == [(-2, 0), (0, -2), (0, 2), (2, 0)]

    for metric in ["loss", "accuracy"]:
        curves = pd.read_csv(project / f"reports/training/{metric}.csv")
        validation = curves[curves["measured_on"] == "validation images"]
        assert list(validation["epoch"]) == [1, 2] and validation[metric].notna().all()
    # The same accuracies against the seconds of training each epoch ended at.
    epoch_seconds = pd.read_csv(project / "reports/training/speed.csv")["epoch_seconds"]
    by_seconds = pd.read_csv(project / "reports/training/accuracy_by_seconds.csv")
    for measured_on in ["training batches", "validation images"]:
        rows = by_seconds[by_seconds["measured_on"] == measured_on]
        assert np.allclose(rows["training_seconds"], epoch_seconds.cumsum())
        assert list(rows["accuracy"]) == list(curves.loc[curves["measured_on"] == measured_on,
                                                         "accuracy"])
    training = json.loads((project / "reports/training/metrics.json").read_text())
    validation_accuracy = list(validation["accuracy"])
    reached = [epoch for epoch, accuracy in enumerate(validation_accuracy) if accuracy >= 0.99]
    assert training["time_to"]["accuracy_99"] == (
        epoch_seconds.cumsum()[reached[0]] if reached else None)
    monkeypatch.chdir(project)
    figure = plot.training_curves()
    for axis in figure.axes:
        assert [line.get_label() for line in axis.get_lines()] == [
            "training batches", "validation images"]
        assert all(list(line.get_xdata()) == [1, 2] for line in axis.get_lines())


def test_an_ensemble_member_without_changes_trains_from_seed_streams_of_its_own(tmp_path,
                                                                              tiny_mirror):
    """A twin of the first model still differs from it (its initial weights, batch order and
    dropout are its own), so averaging the two is worth its cost; the log counts both."""
    project = tmp_path / "project"
    env = make_project(project, *tiny_mirror, **{"train.epochs": 1})
    set_params(project, **{"train.ensemble": {"twin": {}}})

    run(["dvc", "repro", "train"], project, env)

    saved = load_model(project / "data/model/model.keras")
    first, twin = (saved.get_layer(name).get_weights() for name in ("mnist_cnn", "mnist_cnn_twin"))
    assert [weight.shape for weight in first] == [weight.shape for weight in twin]
    assert not any(np.array_equal(mine, theirs) for mine, theirs in zip(first, twin))
    log = pd.read_csv(project / "data/train_log/plots/metrics/speed/training_seconds.tsv", sep="\t")
    assert list(log["step"]) == [0, 1] and log["training_seconds"].is_monotonic_increasing


def test_every_figure_has_a_caption_on_the_report_page(tmp_path, monkeypatch):
    assert sorted(plot.FIGURES) == FIGURES
    monkeypatch.setattr(plot, "FIGURES_DIR", tmp_path)
    with pytest.raises(KeyError, match="uncaptioned.png: give it a caption in FIGURES"):
        plot.save_figure(plt.figure(), "uncaptioned.png")
    assert not list(tmp_path.iterdir())
