"""Interrupted training resumes where it stopped; the same params give the same metrics; an
ensemble (the recommended recipe) trains its members in turn and saves their average."""

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
# The recommended recipe's photo member, 2 epochs as well: 4 epochs in all.
ENSEMBLE_SLICE = {**SLICE, "train.ensemble.photo.epochs": 2}


class Projects:
    """Per recipe, once a module: a project prepared but never trained, and a copy trained without
    interruption. (Parametrized module fixtures would be built again for every test.)"""

    def __init__(self, folder, mirror, jax_env):
        self.folder, self.mirror, self.jax_env = folder, mirror, jax_env
        self.prepared, self.uninterrupted = {}, {}

    def copy(self, kind, destination):
        """(path, env) of a fresh copy of the prepared project of a kind: tutorial, handwriting (the
        recipe with every augmentation and batch normalization), handwriting-jax (on JAX,
        without TensorFlow) or recommended (the handwriting model and the photo model)."""
        if kind not in self.prepared:
            project = self.folder / kind
            recipe, _, backend = kind.partition("-")
            slices = {"jax": JAX_SLICE, "": ENSEMBLE_SLICE if recipe == "recommended" else SLICE}
            env = make_project(project, *self.mirror, recipe=recipe, **slices[backend])
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


def saved_epochs(state):
    """The epochs the resume state records (it is written atomically: whole or absent)."""
    return len(json.loads(state.read_text())["history"]) if state.exists() else 0


def interrupt_after_first_epoch(project, env, signum, sigint_ignored=False, epochs=1):
    """Start training and send `signum` once `epochs` epochs are saved."""
    process = start_repro(project, env, sigint_ignored)
    state = project / "data/resume/state.json"
    deadline = time.monotonic() + 300
    while saved_epochs(state) < epochs:
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, f"{epochs} epochs not completed in 300 s"
        time.sleep(0.05)
    os.killpg(process.pid, signum)  # the whole group, like Ctrl-C in a terminal
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert saved_epochs(state) >= epochs, "the state records the completed epochs"
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
# that the same params give the same model in separate processes. SIGKILL leaves no chance to
# stop cleanly; SIGINT on JAX stops inside JAX's own training loop.
# The handwriting recipe has every random layer and batch normalization, so it stands for the
# others: the tutorial recipe's dropout and optimizer are restored by the same code. On
# TensorFlow it is the recommended recipe's first member: that ensemble is killed inside its
# second member (the handwriting recipe with the photo changes), resumed from that member's
# last epoch as a single model is from its own, after its first member was reloaded finished.
@pytest.mark.parametrize(("kind", "signum", "epochs", "of"),
                         [("handwriting-jax", signal.SIGINT, 1, 2),
                          ("recommended", signal.SIGKILL, 3, 4)],
                         ids=["handwriting-jax-SIGINT", "ensemble-SIGKILL"])
def test_killed_training_resumes_to_the_uninterrupted_result(projects, tmp_path, kind, signum,
                                                            epochs, of):
    project, env = projects.copy(kind, tmp_path / "project")

    output = interrupt_after_first_epoch(project, env, signum, epochs=epochs)
    if signum != signal.SIGKILL:
        assert (f"train: interrupted after {epochs} of {of} epochs; `dvc repro` resumes from "
                "there") in output

    rerun = run(["dvc", "repro", "train"], project, env)
    assert f"train: resuming after epoch {epochs} of {of}" in rerun
    assert stages_run(rerun) == ["train"]
    assert not (project / "data/resume").exists()

    uninterrupted = projects.trained(kind)
    assert epochs_logged(project) == list(range(1, of + 1))
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


def test_an_ensembles_first_member_is_its_recipe_alone_and_the_model_their_average(projects):
    """The recommended recipe: the handwriting model, then the photo model from seed streams of
    its own, saved as one model that averages them; its validation curve is the ensemble's."""
    from stages.lib.model import InkNormalization, Shifted, load_model, model_inputs

    ensemble = projects.trained("recommended")
    saved = load_model(ensemble / "data/model/model.keras")
    first, photo = saved.get_layer("mnist_cnn"), saved.get_layer("mnist_cnn_photo_shift_averaged")
    # The first member trains exactly as the handwriting recipe alone.
    for mine, theirs in zip(first.get_weights(), weights(projects.trained("handwriting")),
                            strict=True):
        assert np.array_equal(mine, theirs)
    # The photo member has its changes: the ink normalized, four shifted views.
    assert not any(isinstance(layer, InkNormalization) for layer in first.layers)
    photo_cnn = photo.get_layer("mnist_cnn_photo")
    assert any(isinstance(layer, InkNormalization) for layer in photo_cnn.layers)
    assert sum(isinstance(layer, Shifted) for layer in photo.layers) == 4

    stored = np.load(ensemble / "data/prepared/validation.npz")
    images, labels = model_inputs(stored["images"], stored["labels"])
    averaged = (first.predict(images, verbose=0) + photo.predict(images, verbose=0)) / 2
    assert np.allclose(saved.predict(images, verbose=0), averaged, atol=1e-6)

    assert epochs_logged(ensemble) == [1, 2, 3, 4]
    validation = pd.read_csv(
        ensemble / "data/train_log/plots/metrics/validation/accuracy.tsv", sep="\t")
    accuracy = np.mean(averaged.argmax(axis=1) == labels.argmax(axis=1))
    assert validation["accuracy"].iloc[-1] == pytest.approx(accuracy, abs=1e-9)
    run_record = json.loads((ensemble / "data/train_log/metrics.json").read_text())["run"]
    assert run_record["members"] == 2
