"""The pipeline on Keras' JAX backend, timed, on a GPU machine with JAX but no network and no
TensorFlow.

On that machine, from a copy of this repository, with the system's Python (3.11 or later; the
standard library only):

    python3 benchmark/gpu_run.py --wheels WHEELS --mnist MNIST RESULTS

1. Installs the pipeline's dependencies from the folder WHEELS into RESULTS/venv, a virtual
   environment that also sees the machine's own packages (JAX with CUDA, NumPy), with no index.
2. Copies the project to RESULTS/project: a new git repository, or DVC without git (core.no_scm)
   where the machine has no git. MNIST_MIRROR points at MNIST, the four .gz files.
3. `dvc repro` of the defaults with train.backend: jax, one stage at a time, each timed; a second
   `dvc repro`, which must run nothing; the strong recipe (conf/recipe/strong.yaml) with the JAX backend (`dvc exp run -S recipe=strong
   -n strong`, or the same params and `dvc repro` without git); a plot.seed change, which must
   rerun plot and report only.
4. Prints, and writes to RESULTS/results.json and RESULTS/results.md: each stage's seconds, each
   epoch's seconds and images a second, the test accuracies, and each run's record (backend, GPU,
   precision, versions).

Make WHEELS on a machine with network (here), for that machine's Python (3.12, x86-64 Linux):

    python benchmark/gpu_run.py --download-wheels WHEELS

Without --wheels the script uses the Python that runs it and its packages (the tests do that on a
CPU, with --set preprocess.train_limit=... to make the runs small).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["fetch", "preprocess", "ood", "mnist_c", "train", "evaluate", "plot", "report"]
PROJECT_FILES = ["dvc.yaml", "dvc.lock", "params.yaml", "conf", "README.md", "docs", "pyproject.toml",
                 ".gitignore", ".dvcignore", "stages", "benchmark", ".dvc/config", ".dvc/plots"]
# Imported by no pipeline stage (stages/compare.py renders Vega charts), and large.
NOT_FOR_THE_PIPELINE = {"tensorflow", "vl-convert-python"}
# What the GPU machine holds already (its JAX with CUDA pins its own NumPy and SciPy there).
ON_THE_GPU_MACHINE = Path(__file__).with_name("gpu_machine_packages.txt")
TARGET = ["--python-version", "3.12", "--implementation", "cp", "--only-binary", ":all:",
          "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
          "--platform", "manylinux2014_x86_64", "--platform", "any"]
# antlr4-python3-runtime (for hydra, which DVC imports) is published as source only.
SOURCE_ONLY = ["antlr4-python3-runtime==4.9.3"]


def requirements():
    """The project's dependencies that the pipeline's stages need, from pyproject.toml."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [line for line in listed
            if line.split(">")[0].split("=")[0].split("[")[0].strip() not in NOT_FOR_THE_PIPELINE]


def canonical(name):
    return name.lower().replace("_", "-").replace(".", "-")


def download_wheels(folder):
    """Every wheel that requirements() needs beyond ON_THE_GPU_MACHINE, for TARGET."""
    folder.mkdir(parents=True, exist_ok=True)
    there = {canonical(line) for line in ON_THE_GPU_MACHINE.read_text().splitlines()
             if line and not line.startswith("#")}
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(folder),
                    *SOURCE_ONLY], check=True)
    local = ["--find-links", str(folder), *TARGET]
    report = folder / "resolution.json"
    subprocess.run([*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
                    str(report), "--target", str(folder / "unused"), *local, *requirements()],
                   check=True)
    pinned = [f"{item['metadata']['name']}=={item['metadata']['version']}"
              for item in json.loads(report.read_text())["install"]
              if canonical(item["metadata"]["name"]) not in there]
    subprocess.run([*pip, "download", "--no-deps", "--quiet", "--dest", str(folder), *local,
                    *pinned], check=True)
    report.unlink()
    size = sum(path.stat().st_size for path in folder.glob("*.whl")) / 2**20
    print(f"{len(list(folder.glob('*.whl')))} wheels, {size:.1f} MiB, in {folder}")


def install(wheels, results):
    """RESULTS/venv with the pipeline's dependencies from WHEELS; returns its python."""
    venv = results / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin/python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                    str(wheels), *requirements()], check=True)
    return python


class Project:
    """RESULTS/project and the commands run in it, each timed and logged."""

    def __init__(self, results, python, mnist):
        self.folder, self.python, self.log = results / "project", python, results / "commands.log"
        self.env = {**os.environ, "MNIST_MIRROR": str(mnist), "DVC_NO_ANALYTICS": "1",
                    "PATH": f"{Path(python).parent}{os.pathsep}{os.environ['PATH']}",
                    "GIT_AUTHOR_NAME": "gpu_run", "GIT_AUTHOR_EMAIL": "gpu_run@localhost",
                    "GIT_COMMITTER_NAME": "gpu_run", "GIT_COMMITTER_EMAIL": "gpu_run@localhost"}
        for name in PROJECT_FILES:
            source, target = ROOT / name, self.folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copy2(source, target)
        self.git = shutil.which("git") is not None
        if self.git:
            self.run("git", "init", "-q")
            self.commit("the project")
        else:
            self.dvc("config", "--local", "core.no_scm", "true")

    def run(self, *command):
        """(seconds, output) of a command that must succeed."""
        started = time.perf_counter()
        result = subprocess.run(command, cwd=self.folder, env=self.env, capture_output=True,
                                text=True)
        seconds = time.perf_counter() - started
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(command)}  # {seconds:.1f} s\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            sys.exit(f"gpu_run: {' '.join(command)} failed:\n{result.stderr[-3000:]}")
        return seconds, result.stdout

    def dvc(self, *arguments):
        return self.run(self.python, "-m", "dvc", *arguments)

    def commit(self, message):
        self.run("git", "add", "-A")
        self.run("git", "commit", "-qm", message)

    def compose(self, overrides):
        """Write params.yaml from conf/ with these overrides, as `dvc exp run -S ...` does."""
        self.run(self.python, "-c", "import os, sys; from dvc.utils.hydra import compose_and_dump; "
                 "compose_and_dump('params.yaml', os.path.abspath('conf'), None, 'config', "
                 "os.path.abspath('conf'), sys.argv[1:])", *overrides)

    def set_params(self, overrides):
        """Edit params.yaml by hand, as it were, with DVC's own `-S` code (no composition)."""
        self.run(self.python, "-c", "import sys; from dvc.utils.hydra import apply_overrides; "
                 "apply_overrides('params.yaml', sys.argv[1:])", *overrides)

    def outcome(self):
        """The run's epochs, test scores and record, from the reports the pipeline wrote."""
        reports = self.folder / "reports"
        training = json.loads((reports / "training/metrics.json").read_text())
        lines = (reports / "training/speed.csv").read_text().split()
        header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
        return {
            "epochs": [{name: float(value) for name, value in zip(header, row)} for row in rows],
            "test": json.loads((reports / "metrics.json").read_text())["test"],
            "run": training["run"],
        }


def ran(output):
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?", help="a new folder for the results")
    parser.add_argument("--wheels", type=Path, help="install the dependencies from this folder")
    parser.add_argument("--mnist", type=Path, help="the folder with the four MNIST .gz files")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra -S override for every run (small runs on a CPU)")
    parser.add_argument("--download-wheels", type=Path, metavar="WHEELS",
                        help="only make the wheels folder for the GPU machine")
    args = parser.parse_args()
    if args.download_wheels:
        return download_wheels(args.download_wheels)
    if not args.results or not args.mnist:
        parser.error("RESULTS and --mnist are required")
    args.results.mkdir(parents=True)
    python = install(args.wheels, args.results) if args.wheels else sys.executable
    project = Project(args.results, python, args.mnist.resolve())
    backend = ["train.backend=jax", *args.set]
    results = {"git": project.git}

    project.compose(backend)
    if project.git:
        project.commit("train.backend: jax")
    results["stage_seconds"] = {stage: round(project.dvc("repro", "--single-item", stage)[0], 1)
                                for stage in STAGES}
    results["default"] = project.outcome()
    _, output = project.dvc("repro")
    results["second_repro_ran"] = ran(output)

    strong = ["recipe=strong", *backend]
    if project.git:
        seconds, _ = project.dvc("exp", "run", "-n", "strong",
                                 *[word for value in strong for word in ("-S", value)])
    else:
        project.compose(strong)
        seconds, _ = project.dvc("repro")
    results["strong"] = {"seconds": round(seconds, 1), **project.outcome()}

    project.set_params(["plot.seed=1"])
    _, output = project.dvc("repro")
    results["plot_change_ran"] = ran(output)

    (args.results / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = summary(results)
    (args.results / "results.md").write_text(table)
    print(table)
    if results["second_repro_ran"] or results["plot_change_ran"] != ["plot", "report"]:
        sys.exit("gpu_run: DVC reran more than the changes asked for (see results.json)")


def summary(results):
    lines = [f"stage seconds (defaults): {results['stage_seconds']}",
             f"second dvc repro ran: {results['second_repro_ran'] or 'nothing'}",
             f"plot.seed change ran: {results['plot_change_ran']}", "",
             "| recipe | epoch | seconds | images/s |", "|---|---|---|---|"]
    for recipe in ("default", "strong"):
        lines += [f"| {recipe} | {int(epoch['epoch'])} | {epoch['epoch_seconds']:.2f} | "
                  f"{epoch['images_per_second']:.0f} |" for epoch in results[recipe]["epochs"]]
    for recipe in ("default", "strong"):
        lines += ["", f"{recipe}: test accuracy {results[recipe]['test']['accuracy']}",
                  f"{recipe} run: {json.dumps(results[recipe]['run'])}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
