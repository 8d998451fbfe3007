"""What a reviewer reads without running anything: reports/README.md written by the pipeline, the
compare report of two commits, the offline plots page in a real headless Chromium, and the
pull-request workflow's steps run as the workflow runs them. All on the session's history of two
trained commits (conftest.py)."""

import io
import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from stages.lib.confusion import confusion_counts
from stages.lib.figures import FIGURES
from tests.conftest import ROOT, clone, run, run_capturing, stages_run

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VEGA_PLOTS = 9  # loss, accuracy, accuracy against seconds, seconds each epoch, confusion
# matrix, errors of each digit, out-of-distribution accuracy by how the digits were drawn, the
# not-digits refused by kind, accuracy under each MNIST-C corruption


def at(project, env, revision, path):
    return run(["git", "show", f"{revision}:{path}"], project, env)


def image_links(markdown):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def test_pipeline_writes_a_reports_readme_that_matches_its_metrics(history):
    project, env, baseline, variant = history
    pages = []
    for revision in (baseline, variant):
        page = at(project, env, revision, "reports/README.md")
        metrics = json.loads(at(project, env, revision, "reports/metrics.json"))
        accuracy = metrics["test"]["accuracy"]
        assert re.search(rf"\| test accuracy\s+\|\s+{accuracy:.4f} \|\s+0\.9930 \|", page)
        assert f"Misclassified test digits: {metrics['test_misclassified']};" in page
        ood = metrics["ood"]
        assert (f"Accuracy {ood['accuracy']:.4f} (lowest draw {ood['lowest_draw']:.4f}, highest "
                f"{ood['highest_draw']:.4f}; loss {ood['loss']:.4f})") in page
        assert f"Mean accuracy {metrics['mnist_c']['mean_accuracy']:.4f} over" in page
        corrupted = pd.read_csv(io.StringIO(at(project, env, revision, "reports/eval/mnist_c.csv")))
        for row in corrupted.itertuples():
            assert re.search(rf"\|\s+{row.corruption}\s+\|\s+{row.accuracy:.4f} \|", page)
        drawn = pd.read_csv(io.StringIO(at(project, env, revision, "reports/eval/ood.csv")))
        for row in drawn.itertuples():
            assert re.search(rf"\|\s+{row.drawn_by}\s+\|\s+{row.value}\s+\|\s+{row.images} \|"
                             rf"\s+{row.accuracy:.4f} \|", page)
        losses = pd.read_csv(io.StringIO(at(project, env, revision, "reports/training/loss.csv")))
        for row in losses.itertuples():
            assert re.search(rf"\|\s+{row.epoch} \|\s+{row.loss:.4f} \|", page)
        per_class = pd.read_csv(io.StringIO(at(project, env, revision, "reports/eval/per_class.csv")))
        for row in per_class.itertuples():
            assert re.search(rf"\|\s+{row.digit} \|\s+{row.precision:.4f} \|", page)
        training = json.loads(at(project, env, revision, "reports/training/metrics.json"))
        assert f"- precision: {training['run']['precision']['used']} (asked for " in page
        assert (f"{training['speed']['training_seconds']:.0f} s of training in all; no "
                "validation images were held out") in page
        links = image_links(page)
        assert sorted(links) == sorted(f"figures/{name}" for name in FIGURES)
        for link in links:  # each committed beside the page
            run(["git", "cat-file", "-e", f"{revision}:reports/{link}"], project, env)
        pages.append(page)
    assert pages[0] != pages[1]
    assert "changed" not in run(["dvc", "status"], project, env)


def test_compare_writes_one_markdown_report_of_two_commits(history, tmp_path):
    project, env, baseline, variant = history
    out = tmp_path / "compare"

    run([sys.executable, "-m", "stages.commands.compare", baseline, variant, "--out", str(out)],
        project, env)

    report = (out / "README.md").read_text()
    assert report.startswith(f"# `{baseline}` against `{variant}`")
    params = report.split("## Params")[1].split("## Metrics")[0]
    assert "train.optimizer.learning_rate" in params and "0.01" in params
    metrics = report.split("## Metrics")[1].split("## Plots")[0]
    assert "test.accuracy" in metrics and "Change" in metrics
    for title in ["Loss each epoch", "Accuracy each epoch", "Confusion matrix (test set)"]:
        assert f"![{title}](" in report
    links = image_links(report)
    assert len(links) >= VEGA_PLOTS
    for link in links:
        assert (out / link).read_bytes().startswith(PNG_SIGNATURE), link

    old, new = (pd.read_csv(io.StringIO(at(project, env, revision, "reports/eval/predictions.csv")))
                for revision in (baseline, variant))
    changed = (confusion_counts(old) != confusion_counts(new)).to_numpy().sum()
    cells = report.split("## Confusion cells that changed")[1].split("## Test digits")[0]
    assert len(re.findall(r"^\|\s+\d", cells, re.M)) == changed > 0
    old_right, new_right = old["predicted"] == old["actual"], new["predicted"] == new["actual"]
    fixed, broken = (new_right & ~old_right).sum(), (old_right & ~new_right).sum()
    assert f"right in the new run, wrong in the old: {fixed}\n" in report
    assert f"wrong in the new run, right in the old: {broken}\n" in report

    # One revision: it is compared with the workspace, as `dvc metrics diff` does.
    run([sys.executable, "-m", "stages.commands.compare", baseline, "--out", str(out)], project, env)
    assert (out / "README.md").read_text().startswith(f"# `{baseline}` against `workspace`")


def drawn_in_chromium(page, tmp_path):
    """(charts drawn, console lines) of a page opened in headless Chromium with no network."""
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return len(re.findall(r'<svg [^>]*class="marks"', result.stdout)), console


def test_offline_plots_page_draws_every_plot_in_headless_chromium(history, tmp_path):
    if not shutil.which("chromium"):
        pytest.skip("Chromium not installed (.ci/run installs Debian's chromium)")
    _, env, baseline, _ = history
    reader = clone(history, tmp_path / "reader")  # as from a Git host: no DVC cache

    run(["dvc", "plots", "diff", baseline, "-o", "online"], reader, env)
    run([sys.executable, "-m", "stages.commands.plots_offline", "diff", baseline, "-o", "offline"],
        reader, env)

    online = reader / "online/index.html"
    drawn, console = drawn_in_chromium(online, tmp_path)
    assert drawn == 0 and any("vegaEmbed is not defined" in line for line in console)

    offline = reader / "offline/index.html"
    html = offline.read_text()
    assert "<script src=" not in html and html.count("vegaEmbed('#") == VEGA_PLOTS
    drawn, console = drawn_in_chromium(offline, tmp_path)
    errors = [line for line in console if re.search(r"error|uncaught|not defined", line, re.I)]
    assert errors == [] and drawn == VEGA_PLOTS


def workflow_steps(job):
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yaml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"push", "pull_request"}
    return {step.get("name", step.get("uses", step.get("run"))): step
            for step in workflow["jobs"][job]["steps"]}


def run_step(step, cwd, env, **variables):
    output, _ = run_capturing(["bash", "-e", "-c", step["run"]], cwd, {**env, **variables})
    return output


def test_pull_request_workflow_runs_the_commands_tested_here(history, tmp_path):
    project, env, baseline, _ = history
    assert workflow_steps("tests")[".ci/run"]["run"] == ".ci/run"
    steps = workflow_steps("review")
    assert steps["Install"]["run"] == ("pip install -q --require-hashes -r requirements/pipeline.txt"
                                       " && pip install -q --no-deps -e .")
    assert steps["Comment on the pull request"]["run"] == (
        "cml comment create --publish compare/README.md")

    # A teammate pushed every commit's results and run cache to the team's remote.
    team_copy = tmp_path / "team"
    shutil.copytree(project, team_copy)
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "--local", "-d", "team", str(remote)], team_copy, env)
    run(["dvc", "push", "--all-commits", "--run-cache"], team_copy, env)
    remote_config = f"[core]\n    remote = team\n['remote \"team\"']\n    url = {remote}\n"

    for secret in (remote_config, ""):
        branch = clone(history, tmp_path / f"branch-{bool(secret)}")
        run(["git", "update-ref", "refs/remotes/origin/base", baseline], branch, env)

        output = run_step(steps["Reproduce the branch's results"], branch, env,
                          DVC_REMOTE_CONFIG=secret)
        # With the secret every result is pulled and nothing runs; without it, the runner trains.
        ran = stages_run(output)
        assert ran == [] if secret else {"fetch", "preprocess", "ood", "train"} <= set(ran)
        assert "changed" not in run(["dvc", "status"], branch, env)

        run_step(steps["Compare with the base branch"], branch, env, BASE_BRANCH="base")
        report = (branch / "compare/README.md").read_text()
        assert report.startswith("# `origin/base` against `workspace`")
        assert "train.optimizer.learning_rate" in report


def test_offline_plots_template_goes_to_the_project_root_from_any_folder(tmp_path, monkeypatch):
    from dvc.repo import Repo

    from stages.commands import plots_offline

    Repo.init(tmp_path, no_scm=True)
    (tmp_path / "reports").mkdir()
    monkeypatch.chdir(tmp_path / "reports")
    assert plots_offline.write_template() == tmp_path / ".dvc/tmp/offline_plots.html"
    assert "vegaEmbed" in (tmp_path / ".dvc/tmp/offline_plots.html").read_text()
    assert not (tmp_path / "reports/.dvc").exists()

    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    with pytest.raises(SystemExit, match=r"^plots: .* is not inside a DVC project$"):
        plots_offline.write_template()
    assert not (outside / ".dvc").exists()
