"""Sweeps with the real DVC: a grid of experiments queued on one machine, then shared with
another through a Git remote and a DVC remote. One module-wide sweep (two seeds queued on
"machine A") serves every test; tests/test_cluster_sweep.py checks a grid of two dimensions
against DVC's expansion."""

import csv
import io
import json
import time

import pytest

from tests.conftest import TINY, file_md5, make_project, model_md5_in, run, stages_run, write_mirror

pytestmark = pytest.mark.slow

GRID = ["-S", "train.seed=range(1,3)"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Machine A: a clone of a shared bare Git remote, with a DVC remote, that ran the grid.

    Returns (bare git remote, DVC remote, machine A's clone, env).
    """
    root = tmp_path_factory.mktemp("sweep")
    md5s = write_mirror(root / "mirror", train_count=500, test_count=200)
    project = root / "project"
    env = make_project(project, root / "mirror", md5s, **TINY)
    # A pipeline never run: the checkout's dvc.lock records the full data's outputs, which
    # no cache or remote here holds.
    (project / "dvc.lock").unlink()
    run(["git", "commit", "-qam", "a pipeline not yet run"], project, env)
    origin, storage = root / "origin.git", root / "storage"
    run(["git", "clone", "-q", "--bare", str(project), str(origin)], root, env)
    machine_a = root / "machine-a"
    run(["git", "clone", "-q", str(origin), str(machine_a)], root, env)
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(storage)], machine_a, env)

    run(["dvc", "exp", "run", "--queue", *GRID], machine_a, env)
    run(["dvc", "queue", "start", "--jobs", "1"], machine_a, env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], machine_a, env)
        if "Queued" not in status and "Running" not in status:
            break
        # Each look is a DVC start-up (0.6 s of CPU), taken from the experiments it waits for.
        time.sleep(5)
    run(["dvc", "queue", "stop", "--kill"], machine_a, env)
    assert status.count("Success") == 2, status
    return origin, storage, machine_a, env


def experiments(workspace, env):
    """{name: (params, metrics)} of every experiment `dvc exp show` lists."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], workspace, env))
    found = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            data = experiment["revs"][0]["data"]
            found[experiment["name"]] = (
                data["params"]["params.yaml"]["data"],
                {path: metrics["data"] for path, metrics in data["metrics"].items()},
            )
    return found


def test_a_queued_sweep_over_seeds_gives_one_experiment_a_seed(sweep):
    _, _, machine_a, env = sweep
    found = experiments(machine_a, env)
    assert sorted(params["train"]["seed"] for params, _ in found.values()) == [1, 2]
    for _, metrics in found.values():
        assert 0 < metrics["reports/metrics.json"]["test"]["accuracy"] <= 1
        assert metrics["reports/training/metrics.json"]["speed"]["epoch_seconds"] > 0

    table = run(["dvc", "exp", "show", "--csv", "--sort-by",
                 "reports/metrics.json:test.accuracy", "--sort-order", "desc"], machine_a, env)
    rows = [row for row in csv.DictReader(io.StringIO(table)) if row["typ"] != "baseline"]
    accuracies = [float(row["test.accuracy"]) for row in rows]
    assert len(accuracies) == 2 and accuracies == sorted(accuracies, reverse=True)


def test_experiments_travel_between_machines_through_git_and_dvc_remotes(sweep, tmp_path):
    origin, storage, machine_a, env = sweep
    run(["dvc", "exp", "push", "--all-commits", "--run-cache", "origin"], machine_a, env)

    machine_b = tmp_path / "machine-b"
    run(["git", "clone", "-q", str(origin), str(machine_b)], tmp_path, env)
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(storage)], machine_b, env)
    listed = run(["dvc", "exp", "list", "origin", "--name-only"], machine_b, env).split()
    names = experiments(machine_a, env)
    assert sorted(listed) == sorted(names)

    chosen = listed[0]
    run(["dvc", "exp", "pull", "--run-cache", "origin", chosen], machine_b, env)
    pulled = experiments(machine_b, env)
    assert set(pulled) == {chosen}
    assert pulled[chosen] == names[chosen]  # same params, same metrics

    run(["dvc", "exp", "apply", chosen], machine_b, env)
    run(["dvc", "pull"], machine_b, env)
    assert file_md5(machine_b / "data/model/model.keras") == model_md5_in(
        (machine_b / "dvc.lock").read_text())
    assert stages_run(run(["dvc", "repro"], machine_b, env)) == []

    # Another of A's trainings, asked for again on B: the pulled run cache restores it.
    other = next(name for name in names
                 if names[name][0]["train"]["seed"] != names[chosen][0]["train"]["seed"])
    params = names[other][0]
    output = run(["dvc", "exp", "run", "--pull", "-S", f"train.seed={params['train']['seed']}"],
                 machine_b, env)
    assert "Stage 'train' is cached - skipping run" in output
    assert "train" not in stages_run(output)
