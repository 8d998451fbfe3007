"""benchmark/gpu_run.py, run as on the GPU machine but on this CPU: JAX, no TensorFlow."""

import json
import sys

import pytest
import yaml

from tests.conftest import make_project, run

pytestmark = pytest.mark.slow

SMALL = ["preprocess.train_limit=128", "train.epochs=2", "train.batch_size=64",
         "evaluate.batch_size=100", "plot.grid_size=16"]


def test_gpu_run_script_runs_the_pipeline_on_jax(tmp_path, tiny_mirror, without_tensorflow):
    # A copy of the project whose fetch stage knows the tiny mirror's checksums.
    project = tmp_path / "project"
    env = make_project(project, *tiny_mirror)
    results = tmp_path / "results"
    output = run([sys.executable, "benchmark/gpu_run.py", str(results), "--mnist",
                  str(tiny_mirror[0]), *[word for value in SMALL for word in ("--set", value)]],
                 project, {**env, "PYTHONPATH": without_tensorflow})

    measured = json.loads((results / "results.json").read_text())
    assert measured["git"] is True
    assert list(measured["stage_seconds"]) == ["fetch", "preprocess", "train", "evaluate", "plot",
                                               "report"]
    assert measured["second_repro_ran"] == []
    assert measured["plot_change_ran"] == ["plot", "report"]
    for recipe in ("default", "strong"):
        assert [epoch["epoch"] for epoch in measured[recipe]["epochs"]] == [1, 2]
        assert measured[recipe]["run"]["backend"] == "jax"
        assert 0 <= measured[recipe]["test"]["accuracy"] <= 1
    # The workspace ends on the strong line's params, then plot.seed 1.
    final = yaml.safe_load((results / "project/params.yaml").read_text())
    assert final["train"]["model"]["batch_norm"] is True and final["train"]["backend"] == "jax"
    assert final["plot"]["seed"] == 1
    assert "| strong | 2 |" in output and (results / "results.md").read_text() in output
