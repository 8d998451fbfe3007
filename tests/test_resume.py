"""Interrupted training resumes where it stopped; the same params give the same metrics."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import make_project, run, set_params, stages_run

pytestmark = pytest.mark.slow

SLICE = {"preprocess.train_limit": 3000, "train.epochs": 2, "plot.grid_size": 16}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_mirror):
    """A project trained once without interruption; returns (path, env)."""
    mirror, md5s = mnist_mirror
    project = tmp_path_factory.mktemp("resume") / "reference"
    env = make_project(project, mirror, md5s, **SLICE)
    run(["dvc", "repro"], project, env)
    return project, env


def copy_of(reference, destination):
    """A copy of the trained reference project, to train again."""
    project, env = reference
    shutil.copytree(project, destination, symlinks=True)
    return destination, env


def train_log(project):
    log = pd.read_csv(project / "reports/train/plots/metrics/train/loss.tsv", sep="\t")
    return log["step"].tolist(), log["loss"].tolist()


def start_repro(project, env):
    """`dvc repro` in its own process group, as a terminal runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "train"],
        cwd=project, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def interrupt_after_first_epoch(project, env, signum):
    process = start_repro(project, env)
    state = project / "data/resume/state.json"
    deadline = time.monotonic() + 300
    while not state.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "no epoch completed in 300 s"
        time.sleep(0.05)
    os.killpg(process.pid, signum)  # the whole group, like Ctrl-C in a terminal
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert json.loads(state.read_text())["history"], "the state records the completed epoch"
    return output


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_killed_training_resumes_to_the_uninterrupted_result(reference, tmp_path, signum):
    project, env = copy_of(reference, tmp_path / "project")

    output = interrupt_after_first_epoch(project, env, signum)
    if signum != signal.SIGKILL:
        assert "train: interrupted after 1 of 2 epochs; `dvc repro` resumes from there" in output

    rerun = run(["dvc", "repro"], project, env)
    assert "train: resuming after epoch 1 of 2" in rerun
    assert stages_run(rerun) == ["train", "evaluate", "plot"]
    assert not (project / "data/resume").exists()

    steps, losses = train_log(project)
    assert steps == [0, 1]
    assert (steps, losses) == train_log(reference[0])
    resumed = json.loads((project / "reports/metrics.json").read_text())
    uninterrupted = json.loads((reference[0] / "reports/metrics.json").read_text())
    assert abs(resumed["test"]["accuracy"] - uninterrupted["test"]["accuracy"]) <= 0.002
    assert resumed == uninterrupted  # resuming is exact: same batches, same dropout masks


def test_changed_params_discard_the_resume_state(reference, tmp_path):
    project, env = copy_of(reference, tmp_path / "project")
    interrupt_after_first_epoch(project, env, signal.SIGTERM)

    set_params(project, **{"train.optimizer.learning_rate": 0.5})
    rerun = run(["dvc", "repro"], project, env)

    assert "resuming" not in rerun and stages_run(rerun) == ["train", "evaluate", "plot"]
    assert train_log(project)[0] == [0, 1]


def test_same_params_give_identical_metrics(reference, tmp_path):
    project, env = copy_of(reference, tmp_path / "project")
    run(["dvc", "repro", "--force", "--downstream", "train"], project, env)
    for metrics in ["reports/metrics.json", "reports/eval/per_class.csv",
                    "reports/train/plots/metrics/train/loss.tsv",
                    "reports/train/plots/metrics/train/accuracy.tsv"]:
        assert (project / metrics).read_bytes() == (reference[0] / metrics).read_bytes(), metrics
