"""The backend: chosen when a command starts, never by an import; refusals. The pipeline on JAX
runs in tests/test_gpu_run.py, tests/test_resume.py and tests/test_distribute.py."""

import os
import subprocess
import sys

import pytest

from stages.lib import backend, tensorflow_parts
from tests.conftest import ROOT, project_params


def test_an_unknown_backend_stops_with_one_line():
    with pytest.raises(SystemExit, match=r"^backend: must be one of tensorflow, jax, got 'torch'$"):
        backend.use("torch")


def test_use_refuses_keras_already_imported_with_another_backend(tmp_path):
    result = subprocess.run(
        # Keras first on JAX, which imports in a third of TensorFlow's time.
        [sys.executable, "-c", "import keras; from stages.lib import backend; backend.use('tensorflow')"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"},
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "backend tensorflow asked for, but Keras was imported with jax first")


IMPORT_EVERY_MODULE = """
import importlib, os, pkgutil, sys
import stages, stages.lib, stages.commands
before = dict(os.environ)
for package in (stages, stages.lib, stages.commands):
    for module in pkgutil.iter_modules(package.__path__):
        # The library modules built on Keras, which commands import after backend.use().
        if module.name not in ("tensorflow_parts", "jax_parts", "model", "augmentation",
                               "batch_norm", "optimizer", "training", "provenance", "checkpoint"):
            importlib.import_module(f"{package.__name__}.{module.name}")
changed = sorted(key for key in set(before) | set(os.environ) if before.get(key) != os.environ.get(key))
print(changed, "keras" in sys.modules)
"""


def test_importing_a_module_chooses_no_backend_and_reads_no_params(tmp_path):
    """From a folder without params.yaml: every stage, command and library module not built on
    Keras imports, sets no environment variable and leaves Keras unimported (the backend is
    still to be chosen)."""
    environment = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERY_MODULE], cwd=tmp_path,
                            env={**environment, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] False"


def test_tensorflow_refuses_xla_with_augmentation_on_a_gpu():
    train = project_params()["train"]
    train.update(xla=True, augment={"rotation": 10, "shift": 0.1, "zoom": 0.1, "thickness": 0, "elastic": 0, "blur": 0})
    gpu = [("NVIDIA H200", (9, 0))]
    assert "ImageProjectiveTransformV3" in tensorflow_parts.unsupported(train, gpu)
    assert tensorflow_parts.unsupported(train, []) is None  # XLA:CPU has the kernel
    assert tensorflow_parts.unsupported({**train, "xla": False}, gpu) is None
