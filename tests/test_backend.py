"""train.backend: the same pipeline on Keras' TensorFlow or JAX backend."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from stages import params, tensorflow_parts
from tests.conftest import ROOT, TINY, make_project, project_params, run, set_params, stages_run

REPORTS = ["reports/metrics.json", "reports/eval/per_class.csv", "reports/training/loss.csv",
           "reports/training/accuracy.csv"]


def test_an_unknown_backend_stops_with_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("train: {backend: torch}\n")
    with pytest.raises(SystemExit, match=r"train.backend: must be one of jax, tensorflow, got 'torch'"):
        params.load_backend(tmp_path / "params.yaml")


def test_stages_refuse_keras_already_imported_with_another_backend(tmp_path):
    (tmp_path / "params.yaml").write_text("train: {backend: jax}\n")
    result = subprocess.run(
        [sys.executable, "-c", "import keras; import stages.backend"], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow"},
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "train.backend is jax, but Keras was imported with tensorflow before stages.backend")


def test_tensorflow_refuses_xla_with_augmentation_on_a_gpu():
    train = project_params()["train"]
    train.update(xla=True, augment={"rotation": 10, "shift": 0.1, "zoom": 0.1})
    gpu = [("NVIDIA H200", (9, 0))]
    assert "ImageProjectiveTransformV3" in tensorflow_parts.unsupported(train, gpu)
    assert tensorflow_parts.unsupported(train, []) is None  # XLA:CPU has the kernel
    assert tensorflow_parts.unsupported({**train, "xla": False}, gpu) is None


@pytest.mark.slow
def test_the_pipeline_moves_to_jax_without_tensorflow(tmp_path, tiny_mirror, without_tensorflow):
    project = tmp_path / "project"
    env = make_project(project, *tiny_mirror, **TINY)
    run(["dvc", "repro"], project, env)

    set_params(project, **{"train.backend": "jax"})
    jax_env = {**env, "PYTHONPATH": without_tensorflow}
    output = run(["dvc", "repro"], project, jax_env)

    # A train param: the data stages stay, evaluate scores the model on the backend that made it.
    assert stages_run(output) == ["train", "evaluate", "plot", "report"]
    assert "train: JAX compiles every training step with XLA" in output
    record = json.loads((project / "reports/training/metrics.json").read_text())["run"]
    assert record["backend"] == "jax" and record["xla"] == {"requested": False, "used": True}
    assert "jax" in record["versions"] and "tensorflow" not in record["versions"]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project, jax_env))
    workspace = shown[0]["data"]["params"]["params.yaml"]["data"]["train"]
    assert workspace["backend"] == "jax"

    first = {name: (project / name).read_bytes() for name in REPORTS}
    run(["dvc", "repro", "--force", "--no-run-cache", "train"], project, jax_env)
    run(["dvc", "repro"], project, jax_env)
    assert {name: (project / name).read_bytes() for name in REPORTS} == first

    # predict loads the JAX-trained model on JAX too, as a user's command would.
    with np.load(project / "data/prepared/test.npz") as test:
        Image.fromarray(test["images"][0]).save(project / "digit.png")
    answer = json.loads(run([sys.executable, "-m", "stages.predict", "--json", "digit.png"],
                            project, jax_env))
    assert answer[0]["digit"] in range(10)
