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
# JAX trains several times slower than TensorFlow on a CPU: a smaller slice, whole batches of the
# strong recipe's 64 (a last, smaller batch would compile the training step a second time).
JAX_SLICE = {**SLICE, "preprocess.train_limit": 960, "train.backend": "jax"}


@pytest.fixture(scope="module")
def prepared(request, tmp_path_factory, mnist_mirror, without_tensorflow):
    """A project with the seed or the strong recipe (augmentation, batch normalization), on
    TensorFlow or, for "strong-jax", on JAX without TensorFlow; its data fetched and prepared,
    never trained; returns (path, env)."""
    project = tmp_path_factory.mktemp("resume") / request.param
    recipe, _, backend = request.param.partition("-")
    env = make_project(project, *mnist_mirror, recipe=recipe,
                       **(JAX_SLICE if backend == "jax" else SLICE))
    if backend == "jax":
        env["PYTHONPATH"] = without_tensorflow
    run(["dvc", "repro", "preprocess"], project, env)
    return project, env


def copy_of(prepared, destination):
    project, env = prepared
    shutil.copytree(project, destination, symlinks=True)
    return destination, env


@pytest.fixture(scope="module")
def uninterrupted(prepared, tmp_path_factory):
    """The same project trained without interruption."""
    project, env = copy_of(prepared, tmp_path_factory.mktemp("resume") / "uninterrupted")
    run(["dvc", "repro"], project, env)
    return project


def train_log(project):
    log = pd.read_csv(project / "reports/training/loss.csv")
    return log["epoch"].tolist(), log["loss"].tolist()


def ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_repro(project, env, sigint_ignored):
    """`dvc repro` in its own process group, as a terminal runs it.

    With sigint_ignored it starts as a background job of a non-interactive shell does (CI
    runners, `nohup`, `cmd &` in a script): SIGINT ignored, so Python installs no handler for it.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "train"],
        cwd=project, env=env, start_new_session=True,
        preexec_fn=ignore_sigint if sigint_ignored else None,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def interrupt_after_first_epoch(project, env, signum, sigint_ignored=False):
    process = start_repro(project, env, sigint_ignored)
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


@pytest.mark.parametrize(
    ("prepared", "signum", "sigint_ignored"),
    [("seed", signal.SIGINT, False), ("seed", signal.SIGINT, True),
     ("seed", signal.SIGTERM, False), ("seed", signal.SIGKILL, False),
     ("strong", signal.SIGINT, False), ("strong", signal.SIGKILL, False),
     ("strong-jax", signal.SIGINT, False)],
    ids=["SIGINT", "SIGINT-inherited-ignored", "SIGTERM", "SIGKILL", "strong-SIGINT", "strong-SIGKILL",
         "strong-jax-SIGINT"],
    indirect=["prepared"],
)
def test_killed_training_resumes_to_the_uninterrupted_result(
    prepared, uninterrupted, tmp_path, signum, sigint_ignored
):
    project, env = copy_of(prepared, tmp_path / "project")

    output = interrupt_after_first_epoch(project, env, signum, sigint_ignored)
    if signum != signal.SIGKILL:
        assert "train: interrupted after 1 of 2 epochs; `dvc repro` resumes from there" in output

    rerun = run(["dvc", "repro"], project, env)
    assert "train: resuming after epoch 1 of 2" in rerun
    assert stages_run(rerun) == ["train", "evaluate", "plot", "report"]
    assert not (project / "data/resume").exists()

    epochs, losses = train_log(project)
    assert epochs == [1, 2]
    assert (epochs, losses) == train_log(uninterrupted)
    resumed = json.loads((project / "reports/metrics.json").read_text())
    expected = json.loads((uninterrupted / "reports/metrics.json").read_text())
    assert abs(resumed["test"]["accuracy"] - expected["test"]["accuracy"]) <= 0.002
    assert resumed == expected  # resuming is exact: same batches, dropout masks, augmentations


@pytest.mark.parametrize("prepared", ["seed"], indirect=True)
def test_changed_params_discard_the_resume_state(prepared, tmp_path):
    project, env = copy_of(prepared, tmp_path / "project")
    interrupt_after_first_epoch(project, env, signal.SIGTERM)

    set_params(project, **{"train.optimizer.learning_rate": 0.5})
    rerun = run(["dvc", "repro"], project, env)

    assert "resuming" not in rerun and stages_run(rerun) == ["train", "evaluate", "plot", "report"]
    assert train_log(project)[0] == [1, 2]


# On JAX, strong-jax-SIGINT above shows it: the killed run's first epoch, the resumed second and
# the uninterrupted run, in three processes, end byte-identical.
@pytest.mark.parametrize("prepared", ["seed", "strong"], indirect=True)
def test_same_params_give_identical_metrics(prepared, uninterrupted, tmp_path):
    project, env = copy_of(prepared, tmp_path / "project")
    run(["dvc", "repro", "--no-run-cache"], project, env)
    for metrics in ["reports/metrics.json", "reports/eval/per_class.csv",
                    "reports/training/loss.csv", "reports/training/accuracy.csv"]:
        assert (project / metrics).read_bytes() == (uninterrupted / metrics).read_bytes(), metrics
