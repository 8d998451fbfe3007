"""The real `dvc repro` on a small slice, in a fresh git repository holding a copy of the project."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import copy_project

pytestmark = pytest.mark.slow

FIGURES = ["confusion_matrix.png", "misclassified.png", "test_predictions.png",
           "train_digits.png", "training_curves.png"]


def run(command, cwd, env):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def stages_run(output):
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def set_params(project, **changes):
    """Change params.yaml by dotted key, as `dvc exp run -S` would."""
    path = project / "params.yaml"
    values = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        target = values
        for parent in parents:
            target = target[parent]
        target[key] = value
    path.write_text(yaml.safe_dump(values, sort_keys=False))


@pytest.fixture
def project(tmp_path, mnist_mirror):
    """A fresh git repository with the project, a small slice and one epoch; returns (dir, env)."""
    mirror, md5s = mnist_mirror
    project = copy_project(tmp_path / "project")
    env = {
        **os.environ,
        "MNIST_MIRROR": str(mirror),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    set_params(project, **{"preprocess.train_limit": 2000, "train.epochs": 1, "fetch.files": md5s})
    run(["git", "init", "-q"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "project"], project, env)
    return project, env


def test_repro_builds_everything_then_reruns_only_what_changed(project):
    project, env = project
    dvc = [sys.executable, "-m", "dvc"]

    first = run([*dvc, "repro"], project, env)
    assert stages_run(first) == ["fetch", "preprocess", "train", "evaluate", "plot"]

    assert len(list((project / "data/raw").glob("*.gz"))) == 4
    assert sorted(p.name for p in (project / "data/prepared").iterdir()) == [
        "test.npz", "train.npz", "validation.npz"]
    assert (project / "data/model/model.keras").stat().st_size > 3_000_000
    losses = pd.read_csv(project / "reports/train/plots/metrics/train/loss.tsv", sep="\t")
    assert list(losses["step"]) == [0]
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert 0.3 < metrics["test"]["accuracy"] <= 1 and metrics["test"]["loss"] > 0
    assert 0.3 < metrics["train"]["accuracy"] <= 1
    predictions = pd.read_csv(project / "reports/eval/predictions.csv")
    assert list(predictions.columns) == ["image", "actual", "predicted", "probability"]
    assert (predictions["actual"] == predictions["predicted"]).mean() == metrics["test"]["accuracy"]
    misclassified = pd.read_csv(project / "reports/eval/misclassified.csv")
    assert len(misclassified) == metrics["test_misclassified"]
    per_class = pd.read_csv(project / "reports/eval/per_class.csv")
    assert list(per_class["digit"]) == list(range(10)) and per_class["support"].sum() == len(predictions)
    assert sorted(p.name for p in (project / "reports/figures").iterdir()) == FIGURES
    assert run([*dvc, "metrics", "show", "--json"], project, env).count("accuracy") >= 2

    second = run([*dvc, "repro"], project, env)
    assert stages_run(second) == [] and "Data and pipelines are up to date." in second

    set_params(project, **{"plot.seed": 7})
    assert stages_run(run([*dvc, "repro"], project, env)) == ["plot"]

    set_params(project, **{"train.seed": 7})
    assert stages_run(run([*dvc, "repro"], project, env)) == ["train", "evaluate", "plot"]

    run([*dvc, "plots", "show", "--out", "plots_page"], project, env)
    page = (project / "plots_page/index.html").read_text()
    assert "confusion" in page.lower() and "training_curves.png" in page
