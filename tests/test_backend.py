"""train.backend: the choice and its refusals. The pipeline on JAX runs in tests/test_gpu_run.py,
tests/test_resume.py (strong-jax) and tests/test_distribute.py."""

import os
import subprocess
import sys

import pytest

from stages import params, tensorflow_parts
from tests.conftest import ROOT, project_params


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
    train.update(xla=True, augment={"rotation": 10, "shift": 0.1, "zoom": 0.1, "thickness": 0, "elastic": 0, "blur": 0, "contrast": 0})
    gpu = [("NVIDIA H200", (9, 0))]
    assert "ImageProjectiveTransformV3" in tensorflow_parts.unsupported(train, gpu)
    assert tensorflow_parts.unsupported(train, []) is None  # XLA:CPU has the kernel
    assert tensorflow_parts.unsupported({**train, "xla": False}, gpu) is None
