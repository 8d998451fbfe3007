"""benchmark/gpu_run.py, run as on the GPU machine but on this CPU: JAX, no TensorFlow; and the
JAX project it leaves, as a user of train.backend: jax would use it."""

import json
import sys
import zipfile

import pytest
import yaml
from PIL import Image, ImageDraw

from tests.conftest import make_project, run, set_params

pytestmark = pytest.mark.slow

# The strong recipe's validation part left out too: on JAX it compiles a step of its own.
SMALL = ["preprocess.train_limit=128", "preprocess.validation_split=0.0", "train.epochs=2",
         "train.batch_size=64", "evaluate.batch_size=100", "plot.grid_size=16"]


def test_gpu_run_script_runs_the_pipeline_on_jax_without_tensorflow(tmp_path, tiny_mirror,
                                                                   jax_env):
    # A copy of the project whose fetch stage knows the tiny mirror's checksums.
    project = tmp_path / "project"
    env = make_project(project, *tiny_mirror)
    results = tmp_path / "results"
    output = run([sys.executable, "benchmark/gpu_run.py", str(results), "--mnist",
                  str(tiny_mirror[0]), *[word for value in SMALL for word in ("--set", value)]],
                 project, {**env, **jax_env})

    measured = json.loads((results / "results.json").read_text())
    assert measured["git"] is True
    assert list(measured["stage_seconds"]) == ["fetch", "preprocess", "ood", "mnist_c", "train",
                                               "evaluate", "plot", "report"]
    assert measured["second_repro_ran"] == []
    assert measured["plot_change_ran"] == ["plot", "report"]
    for recipe in ("default", "strong"):
        assert [epoch["epoch"] for epoch in measured[recipe]["epochs"]] == [1, 2]
        record = measured[recipe]["run"]
        assert record["backend"] == "jax" and record["xla"] == {"requested": False, "used": True}
        assert "jax" in record["versions"] and "tensorflow" not in record["versions"]
        assert 0 <= measured[recipe]["test"]["accuracy"] <= 1
    assert "train: JAX compiles every training step with XLA" in (
        results / "commands.log").read_text()
    # The workspace ends on the strong recipe's params, then plot.seed 1.
    final = yaml.safe_load((results / "project/params.yaml").read_text())
    assert final["train"]["model"]["batch_norm"] is True and final["train"]["backend"] == "jax"
    assert final["plot"]["seed"] == 1
    assert "| strong | 2 |" in output and (results / "results.md").read_text() in output

    workspace, on_jax = results / "project", {**env, **jax_env}
    listed = json.loads(run(["dvc", "exp", "show", "--json"], workspace, on_jax))
    strong = next(experiment["revs"][0]["data"] for commit in listed
                  for experiment in commit["experiments"] or [] if experiment["name"] == "strong")
    assert strong["params"]["params.yaml"]["data"]["train"]["backend"] == "jax"

    # The workspace's model is the strong recipe's, with Keras' own batch normalization under JAX.
    with zipfile.ZipFile(workspace / "data/model/model.keras") as saved:
        layers = json.loads(saved.read("config.json"))["config"]["layers"]
    assert [layer["class_name"] for layer in layers].count("BatchNormalization") == 7

    # predict loads the JAX-trained model on JAX too, as a user's command would.
    seven = Image.new("L", (200, 200), 255)  # a pen's seven: the synthetic digits are blobs
    ImageDraw.Draw(seven).line([(50, 40), (150, 40), (90, 170)], fill=0, width=12)
    seven.save(workspace / "digit.png")
    answer = json.loads(run([sys.executable, "-m", "stages.commands.predict", "--json", "digit.png"],
                            workspace, on_jax))
    assert answer[0]["digit"] in range(10)

    # Back to TensorFlow: a train param, so only train reruns first; evaluate follows the model
    # (it scores a model on the backend its run record names, not on a param of its own).
    set_params(workspace, **{"train.backend": "tensorflow"})
    status = json.loads(run(["dvc", "status", "--json"], workspace, on_jax))
    assert sorted(status) == ["train"]
