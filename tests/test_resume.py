"""Interrupted training resumes where it stopped; the same params give the same metrics."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ignore_sigint, make_project, run, set_params, stages_run, write_mirror

pytestmark = pytest.mark.slow

# Synthetic digits: resuming is about bytes, not accuracy. An epoch of 1,200 images still takes
# over a second, so the signal sent when the first epoch is saved lands inside the second.
TRAINING_IMAGES = 1200
SLICE = {"train.epochs": 2}
# JAX trains 6 to 10 times slower than TensorFlow on a CPU (docs/backends.md): a smaller slice,
# whole batches of the handwriting recipe's 64 (a last, smaller batch would compile the
# training step a second time), and no validation part (its step would be compiled too; the
# TensorFlow run resumes with one).
JAX_SLICE = {**SLICE, "preprocess.train_limit": 640, "preprocess.validation_split": 0.0,
             "train.backend": "jax"}


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
            run(["dvc", "repro", "preprocess"], project, env)
            self.prepared[kind] = project, env
        project, env = self.prepared[kind]
        shutil.copytree(project, destination, symlinks=True)
        return destination, env

    def trained(self, kind):
        """The project of a kind trained without interruption."""
        if kind not in self.uninterrupted:
            project, env = self.copy(kind, self.folder / f"{kind}-uninterrupted")
            run(["dvc", "repro", "train"], project, env)
            self.uninterrupted[kind] = project
        return self.uninterrupted[kind]


@pytest.fixture(scope="module")
def projects(tmp_path_factory, jax_env):
    folder = tmp_path_factory.mktemp("resume")
    mirror = folder / "mirror"
    return Projects(folder, (mirror, write_mirror(mirror, train_count=TRAINING_IMAGES)), jax_env)


TRAINING_LOG = ["data/train_log/plots/metrics/training_batches/loss.tsv",
                "data/train_log/plots/metrics/training_batches/accuracy.tsv"]


def epochs_logged(project):
    """The epochs of DVCLive's training log (its steps count from 0)."""
    return [step + 1 for step in pd.read_csv(project / TRAINING_LOG[0], sep="\t")["step"]]


def weights(project):
    from stages.lib.model import load_model

    return load_model(project / "data/model/model.keras").get_weights()


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


# Resuming is exact (same batches, dropout masks, augmentations), so a resumed run ends with the
# uninterrupted one's weights, bit for bit, and its training log, byte for byte: this also shows
# that the same params give the same model in separate processes. SIGKILL leaves no chance to stop cleanly; SIGINT on JAX stops
# inside JAX's own training loop.
# The handwriting recipe has every random layer and batch normalization, so it stands for the
# others: the tutorial recipe's dropout and optimizer are restored by the same code.
@pytest.mark.parametrize(("kind", "signum"), [("handwriting", signal.SIGKILL),
                                              ("handwriting-jax", signal.SIGINT)],
                         ids=["handwriting-SIGKILL", "handwriting-jax-SIGINT"])
def test_killed_training_resumes_to_the_uninterrupted_result(projects, tmp_path, kind, signum):
    project, env = projects.copy(kind, tmp_path / "project")

    output = interrupt_after_first_epoch(project, env, signum)
    if signum != signal.SIGKILL:
        assert "train: interrupted after 1 of 2 epochs; `dvc repro` resumes from there" in output

    rerun = run(["dvc", "repro", "train"], project, env)
    assert "train: resuming after epoch 1 of 2" in rerun
    assert stages_run(rerun) == ["train"]
    assert not (project / "data/resume").exists()

    uninterrupted = projects.trained(kind)
    assert epochs_logged(project) == [1, 2]
    for name in TRAINING_LOG:
        assert (project / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    resumed, whole = weights(project), weights(uninterrupted)
    assert len(resumed) == len(whole)
    for index, (mine, theirs) in enumerate(zip(resumed, whole)):
        assert np.array_equal(mine, theirs), f"weight {index} differs"


def test_changed_params_discard_the_resume_state(projects, tmp_path):
    project, env = projects.copy("tutorial", tmp_path / "project")
    interrupt_after_first_epoch(project, env, signal.SIGTERM)

    set_params(project, **{"train.optimizer.learning_rate": 0.5})
    rerun = run(["dvc", "repro", "train"], project, env)

    assert "resuming" not in rerun and stages_run(rerun) == ["train"]
    assert epochs_logged(project) == [1, 2]
