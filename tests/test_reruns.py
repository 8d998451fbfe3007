"""Reruns by need: each code file and each section of params.yaml, edited in a fresh copy of the
project, makes `dvc status` report exactly the stages that docs/pipeline.md's table names."""

import re
import subprocess

import pytest
import yaml

from stages.lib import reference
from tests.conftest import ROOT, copy_project, pipeline_env, run

TABLE_HEADING = "## What reruns after a change"
NOTHING = "none"


def documented_table():
    """{change: set of stages} from docs/pipeline.md: `path` or `section.*` -> stages."""
    page = (ROOT / "docs/pipeline.md").read_text()
    section = page.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    table = {}
    for change, stages in re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", section, re.M):
        named = {stage.strip() for stage in stages.split(",")}
        table[change] = set() if named == {NOTHING} else named
    return table


def code_files():
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                              "stages", "conf"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    return sorted(name for name in tracked if name.endswith((".py", ".yaml", ".json")))


def changes():
    return [*code_files(), *(f"{key}.*" for key in (*reference.STAGES, *reference.UNSTAGED_KEYS))]


def stages_reported(project):
    """The stages whose code, params or git-tracked inputs `dvc status` finds changed (data that
    a copy has not pulled is left out)."""
    from dvc.repo import Repo

    tracked = set(subprocess.run(["git", "ls-files"], cwd=project, capture_output=True,
                                 text=True, check=True).stdout.split())
    changed = set()
    with Repo(str(project)) as repo:
        for stage, entries in repo.status().items():
            for entry in entries:
                if isinstance(entry, str):  # "changed command"
                    changed.add(stage.rsplit(":", 1)[-1])
                    continue
                for path, how in entry.get("changed deps", {}).items():
                    if isinstance(how, dict) or path in tracked:
                        changed.add(stage.rsplit(":", 1)[-1])
    return changed


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("reruns"))
    env = pipeline_env(mirror=project)
    run(["git", "init", "-q"], project, env)
    run(["git", "add", "-A"], project, env)
    return project


def edited(project, change):
    """Apply `change` to the copy; return a function that undoes it."""
    if change.endswith(".*"):
        path = project / "params.yaml"
        key = change.removesuffix(".*")
        original = path.read_text()
        values = yaml.safe_load(original)
        values[key] = {**values[key], "probe": 1} if isinstance(values[key], dict) else "probe"
        path.write_text(yaml.safe_dump(values, sort_keys=False))
    else:
        path = project / change
        original = path.read_text()
        path.write_text(original + "\n# a change\n")
    return lambda: path.write_text(original)


def test_the_table_lists_every_code_file_and_params_section():
    assert sorted(documented_table()) == sorted(changes())


@pytest.mark.slow  # a DVC status for each of some sixty changes
def test_each_change_reruns_the_stages_the_table_names(project):
    assert stages_reported(project) == set(), "dvc.lock is out of step (tests/test_lock.py)"
    table = documented_table()
    found = {}
    for change in changes():
        undo = edited(project, change)
        try:
            found[change] = stages_reported(project)
        finally:
            undo()
    wrong = {change: sorted(stages) for change, stages in found.items()
             if stages != table.get(change)}
    assert not wrong, f"docs/pipeline.md's table differs from dvc status: {wrong}"
