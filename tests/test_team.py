"""Team workflows with the real DVC: experiments, comparisons, run cache and remotes.

One module-wide history of two commits (a baseline and a variant with another training seed),
trained on a tiny synthetic slice, serves every test; each test works in its own clone.
"""

import hashlib
import json
import time

import pytest
import yaml

from tests.conftest import make_project, run, set_params, stages_run, write_mirror

pytestmark = pytest.mark.slow

TINY = {"train.epochs": 1, "evaluate.batch_size": 100, "plot.grid_size": 16}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A repository with two trained commits; returns (path, env, baseline rev, variant rev)."""
    root = tmp_path_factory.mktemp("team")
    md5s = write_mirror(root / "mirror", train_count=500, test_count=200)
    project = root / "project"
    env = make_project(project, root / "mirror", md5s, **TINY)

    revisions = []
    for seed in (42, 7):
        set_params(project, **{"train.seed": seed})
        run(["dvc", "repro"], project, env)
        run(["git", "add", "-A"], project, env)
        run(["git", "commit", "-qm", f"train with seed {seed}"], project, env)
        revisions.append(run(["git", "rev-parse", "HEAD"], project, env).strip())
    return project, env, *revisions


def clone(history, destination):
    project, env, *_ = history
    run(["git", "clone", "-q", str(project), str(destination)], destination.parent, env)
    return destination


def locked_model_md5(repository, revision, env):
    lock = yaml.safe_load(run(["git", "show", f"{revision}:dvc.lock"], repository, env))
    outs = lock["stages"]["train"]["outs"]
    return next(out["md5"] for out in outs if out["path"] == "data/model/model.keras")


def file_md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_metrics_params_and_plots_diff_between_commits(history):
    project, env, baseline, variant = history

    metrics = json.loads(run(["dvc", "metrics", "diff", baseline, variant, "--json"], project, env))
    accuracy = metrics["reports/metrics.json"]["test.accuracy"]
    assert accuracy["old"] != accuracy["new"] and accuracy["diff"] == pytest.approx(
        accuracy["new"] - accuracy["old"])
    assert "test.loss" in metrics["reports/metrics.json"]

    params = json.loads(run(["dvc", "params", "diff", baseline, variant, "--json"], project, env))
    assert params["params.yaml"]["train.seed"] == {"old": 42, "new": 7}

    plots = run(["dvc", "plots", "diff", baseline, variant, "--json"], project, env)
    for plot in ["reports/train/plots/metrics", "reports/eval/predictions.csv",
                 "reports/figures/confusion_matrix.png", "reports/figures/test_predictions.png"]:
        assert plot in plots


def test_push_then_fresh_clone_pulls_everything(history, tmp_path):
    project, env, baseline, variant = history
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(remote)], project, env)
    run(["dvc", "push", "--all-commits", "--run-cache"], project, env)

    teammate = clone(history, tmp_path / "teammate")
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(remote)], teammate, env)
    run(["dvc", "pull", "--run-cache"], teammate, env)

    for path in ["data/raw", "data/prepared/train.npz", "data/model/model.keras",
                 "reports/metrics.json", "reports/figures/train_digits.png"]:
        assert (teammate / path).exists(), path
    assert "Data and pipelines are up to date." in run(["dvc", "status"], teammate, env)
    assert stages_run(run(["dvc", "repro"], teammate, env)) == []

    assert file_md5(teammate / "data/model/model.keras") == locked_model_md5(teammate, variant, env)
    run(["git", "checkout", "-q", baseline], teammate, env)
    run(["dvc", "checkout"], teammate, env)
    assert file_md5(teammate / "data/model/model.keras") == locked_model_md5(teammate, baseline, env)
    assert locked_model_md5(teammate, baseline, env) != locked_model_md5(teammate, variant, env)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], teammate, env)

    # Back to the variant's params in the baseline checkout: the pulled run cache has that run.
    set_params(teammate, **{"train.seed": 7})
    output = run(["dvc", "repro"], teammate, env)
    assert "Stage 'train' is cached - skipping run" in output
    assert stages_run(output) == []
    assert file_md5(teammate / "data/model/model.keras") == locked_model_md5(teammate, variant, env)


def test_experiment_with_set_param_is_listed_with_its_metrics(history, tmp_path):
    project, env, *_ = history
    workspace = clone(history, tmp_path / "experiments")

    run(["dvc", "exp", "run", "-S", "train.optimizer.learning_rate=0.5", "-n", "half-lr"],
        workspace, env)

    experiments = json.loads(run(["dvc", "exp", "show", "--json"], workspace, env))
    found = [
        exp for commit in experiments for exp in commit.get("experiments") or []
        if exp["name"] == "half-lr"
    ]
    assert len(found) == 1
    data = found[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["optimizer"]["learning_rate"] == 0.5
    assert "accuracy" in data["metrics"]["reports/metrics.json"]["data"]["test"]


def test_queued_experiments_run_from_tracked_files(history, tmp_path):
    project, env, *_ = history
    workspace = clone(history, tmp_path / "queue")

    for seed in (1, 2):
        run(["dvc", "exp", "run", "--queue", "-S", f"train.seed={seed}", "-n", f"seed-{seed}"],
            workspace, env)
    run(["dvc", "queue", "start", "--jobs", "1"], workspace, env)

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], workspace, env)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    run(["dvc", "queue", "stop", "--kill"], workspace, env)
    assert status.count("Success") == 2, status + run(["dvc", "queue", "logs", "seed-1"], workspace, env)
