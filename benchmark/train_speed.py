"""Training speed side by side: the plain tutorial port against the pipeline's train stage on
each Keras backend (train.backend: tensorflow and jax).

All train on the same slice, batch size and epochs, in fresh processes, alternating; each
reports its fit time (start-up excluded; for JAX this includes compiling the training step in
the first epoch), test accuracy and peak memory. Needs data/raw/ (run `dvc repro fetch` first)
and, for jax, the JAX wheel (`pip install -e '.[jax]'`). Prints a table and writes it as JSON.

    python benchmark/train_speed.py --train-limit 20000 --epochs 2 --repeats 3 [--xla]
        [--backends tensorflow,jax]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
FLOP_PER_TRAINING_IMAGE = 130e6  # forward and backward pass of the tutorial's CNN
PEAK_RSS = "import resource, runpy, sys; sys.argv = ['x']; runpy.run_module('stages.train', run_name='__main__'); print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"


def cpu_peak_gflops():
    """An upper bound: 64 fp32 FLOP a cycle a core (two 512-bit FMA units, the most any x86 core
    has), twice that in bf16 where the CPU has AVX512_BF16, at the clock /proc/cpuinfo reports."""
    info = Path("/proc/cpuinfo").read_text()
    ghz = max(float(mhz) for mhz in re.findall(r"cpu MHz\s*:\s*([\d.]+)", info)) / 1000
    flags = set(re.search(r"^flags\s*:(.*)$", info, re.M).group(1).split())
    fp32 = os.cpu_count() * ghz * 64
    return {"fp32": fp32, "bf16": 2 * fp32 if "avx512_bf16" in flags else fp32}


def run(command, cwd, env=None):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def plain_tutorial(raw_dir, args):
    output = run([sys.executable, ROOT / "benchmark/plain_tutorial.py", raw_dir,
                  str(args.train_limit), str(args.epochs), str(args.batch_size)], ROOT)
    return json.loads(output.strip().splitlines()[-1])


# The trained model's accuracy on the test split, on the backend that trained it (evaluate would
# also need the ood and mnist_c stages' data).
TEST_ACCURACY = """import sys
from stages.lib import backend
backend.use(sys.argv[1])
from stages.lib.model import load_model, model_inputs
from stages.lib.splits import load_split
images, labels = model_inputs(*load_split("test"))
predicted = load_model("data/model/model.keras").predict(images, verbose=0).argmax(axis=1)
print("TEST_ACCURACY", (predicted == labels.argmax(axis=1)).mean())
"""


def pipeline_stage(workdir, args, backend):
    output = run([sys.executable, "-c", PEAK_RSS], workdir)
    record = json.loads((workdir / "data/train_log/metrics.json").read_text())["run"]
    # A fallback would time another setting than the one the table names.
    if record["backend"] != backend:
        sys.exit(f"pipeline trained on {record['backend']}, not {backend}")
    if record["precision"]["used"] != args.precision:
        sys.exit(f"pipeline trained in {record['precision']['used']}, not {args.precision}")
    if record["xla"]["used"] != (args.xla or backend == "jax"):  # JAX always compiles
        sys.exit(f"pipeline ran with xla.used {record['xla']['used']}, not {args.xla}")
    seconds = pd.read_csv(workdir / "data/train_log/plots/metrics/speed/epoch_seconds.tsv",
                          sep="\t")
    accuracy = run([sys.executable, "-c", TEST_ACCURACY, backend], workdir)
    return {
        "fit_seconds": float(seconds["epoch_seconds"].sum()),
        "test_accuracy": float(accuracy.split("TEST_ACCURACY")[-1]),
        "peak_rss_mb": float(output.split("PEAK_RSS_MB")[-1]),
    }


def prepare_workdir(workdir, args, backend):
    """A project folder holding this checkout's params with the benchmark's slice."""
    workdir.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["preprocess"].update(train_limit=args.train_limit, validation_split=0.0)
    params["train"].update(epochs=args.epochs, batch_size=args.batch_size,
                           precision=args.precision, xla=args.xla, backend=backend)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    (workdir / "data").mkdir()
    os.symlink(ROOT / "data/raw", workdir / "data/raw")
    run([sys.executable, "-m", "stages.preprocess"], workdir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default=yaml.safe_load(
        (ROOT / "params.yaml").read_text())["train"]["precision"])
    parser.add_argument("--xla", action="store_true", help="the pipeline with train.xla: true")
    parser.add_argument("--backends", default="tensorflow,jax",
                        help="comma-separated train.backend values to time")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmark/train_speed.json")
    args = parser.parse_args()
    if not (ROOT / "data/raw").is_dir():
        sys.exit("benchmark: no data/raw/; run `dvc repro fetch` first")

    rows = []
    folder = Path(tempfile.mkdtemp(prefix="train-speed-"))
    measures = {"plain tutorial": lambda: plain_tutorial(ROOT / "data/raw", args)}
    try:
        for backend in args.backends.split(","):
            prepare_workdir(folder / backend, args, backend)
            measures[f"pipeline ({backend})"] = (
                lambda backend=backend: pipeline_stage(folder / backend, args, backend))
        for repeat in range(args.repeats):
            for name, measure in measures.items():
                result = measure()
                images = args.train_limit * args.epochs
                rows.append({"script": name, "repeat": repeat, **result,
                             "images_per_second": images / result["fit_seconds"]})
                print(f"{name:15} repeat {repeat}: {rows[-1]['images_per_second']:7.0f} images/s, "
                      f"test accuracy {result['test_accuracy']:.4f}", flush=True)
    finally:
        shutil.rmtree(folder)

    table = pd.DataFrame(rows).groupby("script").agg(
        images_per_second=("images_per_second", "median"),
        test_accuracy=("test_accuracy", "mean"),
        peak_rss_mb=("peak_rss_mb", "max"),
    )
    peaks = cpu_peak_gflops()
    table["gflops"] = table["images_per_second"] * FLOP_PER_TRAINING_IMAGE / 1e9
    # Each against the peak of the arithmetic it used: the plain script computes in float32.
    pipeline_peak = peaks["bf16"] if args.precision == "mixed_bfloat16" else peaks["fp32"]
    table["peak_gflops"] = [pipeline_peak if name.startswith("pipeline") else peaks["fp32"]
                            for name in table.index]
    table["fraction_of_peak"] = table["gflops"] / table["peak_gflops"]
    table["against_plain"] = table["images_per_second"] / table.loc["plain tutorial",
                                                                     "images_per_second"]

    print(f"\n{args.train_limit} images x {args.epochs} epochs, batch {args.batch_size}, "
          f"pipeline precision {args.precision}, xla {args.xla}, "
          f"median of {args.repeats} alternating runs")
    print(table.round(3).to_string())
    print(f"CPU peak estimate {peaks['fp32']:.0f} GFLOP/s fp32, {peaks['bf16']:.0f} GFLOP/s bf16")
    args.out.write_text(json.dumps({
        "settings": {**vars(args), "out": str(args.out)},
        "cpu_peak_gflops": peaks,
        "runs": rows,
        "summary": table.reset_index().to_dict(orient="records"),
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
