"""train.distribute: mirrored, on two logical CPU devices standing in for two GPUs."""

import json
import sys

import pandas as pd
import pytest

from tests.conftest import make_project, run, set_params

pytestmark = pytest.mark.slow

TRAIN_ON_TWO_CPU_DEVICES = """
import runpy, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
runpy.run_module("stages.train", run_name="__main__")
"""


def trained(project, env, command):
    output = run(command, project, env)
    run([sys.executable, "-m", "stages.evaluate"], project, env)
    log = pd.read_csv(project / "reports/training/accuracy.csv")
    losses = pd.read_csv(project / "reports/training/loss.csv")
    metrics = json.loads((project / "reports/metrics.json").read_text())
    return output, log["accuracy"].tolist(), losses["loss"].tolist(), metrics


def test_mirrored_training_matches_single_device(tmp_path, mnist_mirror):
    project = tmp_path / "project"
    env = make_project(project, *mnist_mirror, **{"preprocess.train_limit": 3000, "train.epochs": 2})
    run(["dvc", "repro", "preprocess"], project, env)

    _, single_accuracy, single_loss, single = trained(
        project, env, [sys.executable, "-m", "stages.train"])
    set_params(project, **{"train.distribute": "mirrored"})
    output, accuracy, loss, mirrored = trained(
        project, env, [sys.executable, "-c", TRAIN_ON_TWO_CPU_DEVICES])

    assert "train: mirrored across 2 replicas" in output
    run_record = json.loads((project / "reports/training/metrics.json").read_text())["run"]
    assert run_record["distribute"] == {"requested": "mirrored", "replicas": 2}
    # Keras 3 has summed per-replica metrics before: accuracies above 1, losses doubled.
    assert all(0 < value <= 1 for value in accuracy)
    assert abs(loss[-1] - single_loss[-1]) < 0.3 * single_loss[-1]
    assert abs(accuracy[-1] - single_accuracy[-1]) < 0.03
    assert abs(mirrored["test"]["accuracy"] - single["test"]["accuracy"]) < 0.03
