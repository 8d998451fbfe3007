"""dvc.lock is in step with the committed code, params and results: `dvc status` in a clone
finds nothing changed but the data DVC has not yet pulled, so nothing reruns for nothing."""

import json
import subprocess

from tests.conftest import ROOT, copy_project, pipeline_env, run, set_params


def out_of_step(project, env):
    """Each change `dvc status` finds in what git carries: a stage's code, command, params or
    committed results. Data that a clone has not pulled yet (deleted, not in cache) is left out."""
    tracked = subprocess.run(["git", "ls-files"], cwd=project, capture_output=True, text=True,
                             check=True).stdout.splitlines()

    def in_git(path):
        return path in tracked or any(name.startswith(f"{path}/") for name in tracked)

    changes = []
    for stage, entries in json.loads(run(["dvc", "status", "--json"], project, env)).items():
        for entry in entries:
            if isinstance(entry, str):  # "changed command", "always changed"
                changes.append(f"{stage}: {entry}")
                continue
            for paths in entry.values():
                for path, change in paths.items():
                    if isinstance(change, dict):  # params: {dotted key: change}
                        changes += [f"{stage}: {path} {key} {how}" for key, how in change.items()]
                    elif in_git(path):
                        changes.append(f"{stage}: {path} {change}")
    return changes


def test_committed_lock_matches_the_code_params_and_reports():
    changes = out_of_step(ROOT, pipeline_env(mirror=ROOT))
    assert not changes, ("dvc.lock is out of step; rerun the stages on the full data (`dvc repro`)"
                         " and commit dvc.lock with the reports:\n" + "\n".join(changes))


def test_a_code_or_params_change_without_a_rerun_is_caught(tmp_path):
    project = copy_project(tmp_path)
    env = pipeline_env(mirror=tmp_path)
    run(["git", "init", "-q"], project, env)
    run(["git", "add", "-A"], project, env)

    with open(project / "stages/lib/model.py", "a") as code:
        code.write("# a change after the last run\n")
    set_params(project, **{"train.epochs": 9, "plot.seed": 1})

    # dvc.yaml names whole sections as params, so DVC names the section.
    assert sorted(out_of_step(project, env)) == [
        "evaluate: stages/lib/model.py modified",
        "plot: params.yaml plot modified",
        "train: params.yaml train modified",
        "train: stages/lib/model.py modified",
    ]
