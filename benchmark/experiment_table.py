"""One row an experiment of this clone (`dvc exp show --all-commits`): the commit it ran on,
recipe, seed, the first model's epochs, batch size, weight averaging, test-time shift and
highest dropout rate, the models averaged (members), seconds of training (all members), time to
each validation accuracy, the last epoch's validation accuracy, MNIST test accuracy, the drawn
digits' reporting part (mean, lowest and highest draw), MNIST-C's mean and the CPU or GPU it ran
on. docs/recipes.md and docs/speed.md quote its rows; --csv appends the rows not yet in a file,
so runs of several sessions and machines add up (benchmark/recipe_runs.csv).

    python benchmark/experiment_table.py [--csv benchmark/recipe_runs.csv]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.evaluate import TIME_TO_ACCURACIES  # noqa: E402


def rows(shown):
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            if experiment["revs"][0].get("error"):
                continue  # failed or killed: DVC shows its baseline's metrics
            data = experiment["revs"][0].get("data") or {}
            metrics = {path: found["data"] for path, found in data.get("metrics", {}).items()
                       if "data" in found}
            if "reports/metrics.json" not in metrics or data.get("rev") == "workspace":
                continue  # queued or still running
            params = data["params"]["params.yaml"]["data"]
            scores, training = metrics["reports/metrics.json"], metrics["reports/training/metrics.json"]
            device, time_to = training["run"]["device"], training.get("time_to", {})
            model = params["train"]["model"]
            yield {
                "commit": commit["rev"][:7],
                "recipe": params["recipe"], "seed": params["train"]["seed"],
                "epochs": params["train"]["epochs"], "batch_size": params["train"]["batch_size"],
                "ema": params["train"]["optimizer"].get("use_ema", False),
                "shift": params["train"].get("test_time_shift", 0),
                "dropout": max([model["dropout"], *(item["dropout"] for item in model["conv_stack"]
                                                    if "dropout" in item)]),
                "members": 1 + len(params["train"].get("ensemble") or {}),
                "training_seconds": round(training["speed"].get("training_seconds", float("nan"))),
                # DVC leaves out a null metric: never reached, or nothing held out.
                **{key.replace("accuracy", "to"): round(seconds)
                   if (seconds := time_to.get(key)) else None for key in TIME_TO_ACCURACIES},
                "validation": round(training.get("validation", {}).get("accuracy", float("nan")), 4),
                "test": scores["test"]["accuracy"],
                "drawn": scores["ood"]["accuracy"], "drawn_lowest": scores["ood"]["lowest_draw"],
                "drawn_highest": scores["ood"]["highest_draw"],
                "mnist_c": scores["mnist_c"]["mean_accuracy"],
                "device": f"{device['type']} {device['name']}",
                "precision": training["run"]["precision"]["used"],
            }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="also add the rows to this CSV file")
    args = parser.parse_args()
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--all-commits", "--json"],
                                      capture_output=True, text=True, check=True).stdout)
    table = pd.DataFrame(list(rows(shown))).sort_values(["recipe", "seed", "commit"])
    print(table.to_string(index=False))
    if args.csv:
        if Path(args.csv).exists():
            # A run already in the file stays as recorded there.
            table = pd.concat([pd.read_csv(args.csv), table]).drop_duplicates(
                ["commit", "seed", "training_seconds", "test"], keep="first")
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
