"""The README, CONTRIBUTING.md, docs/ and reports/README.md: links that resolve, commands that
name what exists, recipe lines that params.yaml's schema accepts."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.recipes import recipe_params
from stages.lib import params, reference
from tests.conftest import ROOT

PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "reports/README.md",
         *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def page_id(page):
    return str(page.relative_to(ROOT))


def commands(page):
    """Each command of the page's bash blocks: continued lines joined, comments dropped, and
    `a && b` split."""
    for block in BLOCK.findall(page.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            yield from (part.strip() for part in line.split("&&") if part.strip())


def test_the_readme_fits_in_200_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_and_image_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+://|^mailto:|^#", target):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page_id(page)} links to {target}, which does not exist"


RELATIVE_PATH = re.compile(r"(?<![\w/.])(?:\.\./)+[\w.\-/]*")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_path_leads_outside_the_repository(page):
    """A reader's clone holds nothing beside it: every ../ path a page names, in a link or in
    the text, stays inside the repository."""
    for target in RELATIVE_PATH.findall(page.read_text()):
        path = (page.parent / target).resolve()
        assert path.is_relative_to(ROOT), f"{page_id(page)} names {target}, outside the repository"


def test_every_docs_page_is_in_the_readmes_table():
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"docs/{page.name} is not linked from the README"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_experiment_lines_set_keys_the_schema_accepts(page):
    """`dvc exp run -S` lines, composed from conf/ as DVC composes them, give params every stage
    accepts; a sweep, which DVC expands into several runs, is checked for every value."""
    from dvc.utils.hydra import get_hydra_sweeps

    for command in commands(page):
        if not command.startswith("dvc exp run"):
            continue
        words = shlex.split(command)
        overrides = [value for flag, value in zip(words, words[1:]) if flag == "-S"]
        for sweep in get_hydra_sweeps({"params.yaml": overrides}):
            chosen = sweep["params.yaml"]
            recipe = next((value.split("=", 1)[1] for value in chosen
                           if value.startswith("recipe=")), "tutorial")
            values = recipe_params(recipe, [value for value in chosen
                                            if not value.startswith("recipe=")])
            for section, model in reference.stage_models():
                params.check(values, section, model)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_commands_name_modules_and_scripts_that_exist(page):
    for command in commands(page):
        words = shlex.split(command)
        if words[:2] == ["python", "-m"] and words[2].startswith("stages."):
            assert (ROOT / f"{words[2].replace('.', '/')}.py").is_file(), command
        elif words[0] in ("python", "python3") and words[1].endswith(".py"):
            assert (ROOT / words[1]).is_file(), command


@pytest.mark.parametrize("module", ["predict", "compare", "plots_offline", "serve"])
def test_the_documented_commands_answer_help(module, tmp_path):
    """The commands the pages show by their options start and describe them, from any folder."""
    result = subprocess.run([sys.executable, "-m", f"stages.commands.{module}", "--help"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


def test_ci_runs_the_readmes_test_command():
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    test_command = next(block.strip() for block in blocks if block.strip().endswith("&& pytest"))
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip()]
    assert ci_lines[-1] == test_command


def installed_commands():
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("command", sorted(installed_commands()))
def test_the_installed_commands_start_from_any_folder(command, tmp_path):
    """The console scripts of pyproject.toml, as `pip install -e .` put them beside Python."""
    script = Path(sys.executable).parent / command
    assert script.is_file(), f"{command} is not installed: pip install -e ."
    result = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
