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
# JAX trains 6 to 10 times slower than TensorFlow on a CPU (docs/backends.md): a smaller slice,
# whole batches of the handwriting recipe's 64 (a last, smaller batch would compile the
# training step a second time).
JAX_SLICE = {**SLICE, "preprocess.train_limit": 960, "train.backend": "jax"}


class Projects:
    """Per recipe, once a module: a project prepared but never trained, and a copy trained without
    interruption. (Parametrized module fixtures would be built again for every test.)"""

    def __init__(self, folder, mirror, jax_env):
        self.folder, self.mirror, self.jax_env = folder, mirror, jax_env
        self.prepared, self.uninterrupted = {}, {}

    def copy(self, kind, destination):
        """(path, env) of a fresh copy of the prepared project of a kind: tutorial, handwriting (the
        recipe with every augmentation and batch normalization) or handwriting-jax (on JAX,
        without TensorFlow)."""
        if kind not in self.prepared:
            project = self.folder / kind
            recipe, _, backend = kind.partition("-")
            env = make_project(project, *self.mirror, recipe=recipe,
                               **(JAX_SLICE if backend == "jax" else SLICE))
            if backend == "jax":
                env.update(self.jax_env)
            run(["dvc", "repro", "preprocess", "ood", "mnist_c"], project, env)
            self.prepared[kind] = project, env
        project, env = self.prepared[kind]
        shutil.copytree(project, destination, symlinks=True)
        return destination, env

    def trained(self, kind):
        """The project of a kind trained and evaluated without interruption."""
        if kind not in self.uninterrupted:
            project, env = self.copy(kind, self.folder / f"{kind}-uninterrupted")
            run(["dvc", "repro", "evaluate"], project, env)
            self.uninterrupted[kind] = project
        return self.uninterrupted[kind]


@pytest.fixture(scope="module")
def projects(tmp_path_factory, mnist_mirror, jax_env):
    return Projects(tmp_path_factory.mktemp("resume"), mnist_mirror, jax_env)


def train_log(project):
    log = pd.read_csv(project / "reports/training/loss.csv")
    return log["epoch"].tolist(), log["loss"].tolist()


def ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_repro(project, env, sigint_ignored):
    """`dvc repro` of train in its own process group, as a terminal runs it.

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
    ("signum", "sigint_ignored"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["SIGINT", "SIGINT-inherited-ignored", "SIGTERM"],
)
def test_a_signal_stops_training_with_its_last_epoch_saved(projects, tmp_path, signum,
                                                          sigint_ignored):
    project, env = projects.copy("tutorial", tmp_path / "project")
    output = interrupt_after_first_epoch(project, env, signum, sigint_ignored)
    assert "train: interrupted after 1 of 2 epochs; `dvc repro` resumes from there" in output


REPORTS = ["reports/metrics.json", "reports/eval/per_class.csv", "reports/training/loss.csv",
           "reports/training/accuracy.csv"]


# Resuming is exact (same batches, dropout masks, augmentations), so a resumed run ends
# byte-identical to the uninterrupted one: this also shows that the same params give the same
# metrics in separate processes. SIGKILL leaves no chance to stop cleanly; SIGINT on JAX stops
# inside JAX's own training loop.
@pytest.mark.parametrize(("kind", "signum"), [("tutorial", signal.SIGKILL),
                                                  ("handwriting", signal.SIGKILL),
                                                  ("handwriting-jax", signal.SIGINT)],
                         ids=["SIGKILL", "handwriting-SIGKILL", "handwriting-jax-SIGINT"])
def test_killed_training_resumes_to_the_uninterrupted_result(projects, tmp_path, kind, signum):
    project, env = projects.copy(kind, tmp_path / "project")

    output = interrupt_after_first_epoch(project, env, signum)
    if signum != signal.SIGKILL:
        assert "train: interrupted after 1 of 2 epochs; `dvc repro` resumes from there" in output

    rerun = run(["dvc", "repro", "evaluate"], project, env)
    assert "train: resuming after epoch 1 of 2" in rerun
    assert stages_run(rerun) == ["train", "evaluate"]
    assert not (project / "data/resume").exists()

    uninterrupted = projects.trained(kind)
    assert train_log(project)[0] == [1, 2]
    for name in REPORTS:
        assert (project / name).read_bytes() == (uninterrupted / name).read_bytes(), name


def test_changed_params_discard_the_resume_state(projects, tmp_path):
    project, env = projects.copy("tutorial", tmp_path / "project")
    interrupt_after_first_epoch(project, env, signal.SIGTERM)

    set_params(project, **{"train.optimizer.learning_rate": 0.5})
    rerun = run(["dvc", "repro", "evaluate"], project, env)

    assert "resuming" not in rerun and stages_run(rerun) == ["train", "evaluate"]
    assert train_log(project)[0] == [1, 2]
