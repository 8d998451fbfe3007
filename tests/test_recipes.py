"""Recipes by name: conf/recipe/*.yaml composed into params.yaml by DVC's Hydra composition, the
stamp that refuses to drop a hand edit, one line for an unknown recipe."""

import json
import subprocess
import sys

import pytest
import yaml

from benchmark.recipes import recipe_params
from stages.lib import params, reference
from tests.conftest import (COMPOSE, ROOT, make_project, run, run_capturing, set_params,
                            stages_run)

RECIPES = sorted(path.stem for path in (ROOT / "conf/recipe").glob("*.yaml"))


def test_the_recipes_are_files():
    assert RECIPES == ["fast", "handwriting", "photo", "recommended", "strong", "tutorial"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_gives_params_every_stage_accepts(recipe):
    values = recipe_params(recipe)
    assert values["recipe"] == recipe
    for section, model in reference.stage_models():
        params.check(values, section, model)


def test_a_recipe_file_holds_only_what_differs():
    """strong changes the defaults; handwriting adds to strong only its ink augmentation."""
    tutorial, strong, handwriting = (recipe_params(name)["train"]
                                     for name in ("tutorial", "strong", "handwriting"))
    assert strong["optimizer"]["name"] == "adam" and strong["model"]["batch_norm"] is True
    assert {**strong, "augment": None} == {**handwriting, "augment": None}
    assert {key for key in handwriting["augment"]
            if handwriting["augment"][key] != strong["augment"][key]} == {
        "thickness", "elastic", "blur"}
    written = yaml.safe_load((ROOT / "conf/recipe/handwriting.yaml").read_text())
    assert written["defaults"] == ["strong"] and set(written["train"]) == {"augment"}
    assert tutorial == yaml.safe_load((ROOT / "params.yaml").read_text())["train"]


def test_committed_params_yaml_is_the_composition_of_conf(tmp_path):
    """What `dvc exp run` with no -S would write, byte for byte: a clone's first experiment
    changes nothing it did not ask for."""
    (tmp_path / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())
    (tmp_path / "conf").symlink_to(ROOT / "conf")
    result = subprocess.run([sys.executable, "-c", COMPOSE], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "params.yaml").read_text() == (ROOT / "params.yaml").read_text()
    assert (ROOT / "params.yaml").read_text().startswith(
        "written_by: dvc exp run, from conf/; digest ")


def dvc_failing(command, project, env):
    result = subprocess.run([sys.executable, "-m", "dvc", *command], cwd=project, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0, result.stdout
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.slow
def test_recipes_by_name_and_hand_edits_in_a_real_repository(tmp_path, tiny_mirror):
    project = tmp_path / "project"
    env = make_project(project, *tiny_mirror, **{"train.epochs": 1, "evaluate.batch_size": 100,
                                                 "plot.grid_size": 16})

    assert dvc_failing(["exp", "run", "-S", "recipe=strongest"], project, env) == [
        "recipe=strongest: no such recipe; the recipes are fast, handwriting, photo, recommended, strong, tutorial (conf/recipe/)"]

    # A hand edit: `dvc repro` runs it as written; `dvc exp run` refuses to drop it.
    set_params(project, **{"train.batch_size": 50})
    assert "train" in stages_run(run(["dvc", "repro", "train"], project, env))
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["batch_size"] == 50
    edited = (project / "params.yaml").read_text()
    lines = dvc_failing(["exp", "run"], project, env)
    assert len(lines) == 1 and lines[0].startswith(
        "params.yaml: edited since `dvc exp run` wrote it from conf/")
    assert dvc_failing(["exp", "run"], project / "stages", env) == lines  # from a subfolder too
    assert (project / "params.yaml").read_text() == edited

    # Back to the composed file, then a recipe by name beside another override.
    run(["git", "checkout", "params.yaml"], project, env)
    run(["dvc", "exp", "run", "-n", "strong-1", "-S", "recipe=strong", "-S", "train.epochs=2",
         "train"], project, env)
    shown, _ = run_capturing(["dvc", "exp", "show", "--json"], project, env)
    experiments = {experiment["name"]: experiment
                   for baseline in json.loads(shown) for experiment in
                   [baseline, *(run["revs"][0] for run in baseline.get("experiments") or [])]
                   if experiment.get("name")}
    effective = experiments["strong-1"]["data"]["params"]["params.yaml"]["data"]
    assert effective["recipe"] == "strong" and effective["train"]["epochs"] == 2
    assert effective["train"]["optimizer"] == {"name": "adam", "learning_rate": 0.005}
    assert effective["train"]["model"]["batch_norm"] is True
