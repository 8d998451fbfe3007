"""Compare two runs in one Markdown report with images, for a reviewer who runs nothing.

    python -m stages.commands.compare main                 # main against the workspace
    python -m stages.commands.compare main strong          # two revisions or experiment names
    python -m stages.commands.compare main --out compare   # the folder written (default: compare/)

The report holds the params and metrics diffs (DVC's own `--md` tables), every plot of dvc.yaml
with both runs drawn together (rendered to PNG by vl-convert-python, which bundles Vega, so no
browser or network is needed), the confusion cells that changed, and test digits that one model
gets right and the other wrong. Test images come from the workspace's data/prepared/.
"""

import argparse
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import dvc.api
import pandas as pd
import vl_convert

from stages.lib.atomic import atomic_path
from stages.lib.confusion import confusion_counts
from stages.lib.figures import digit_grid, save
from stages.lib.splits import load_split

WORKSPACE = "workspace"  # DVC's name for the files on disk
PREDICTIONS = "reports/eval/predictions.csv"
DIGITS_SHOWN = 8  # of each kind: fixed by the new run, broken by it


def run_dvc(*arguments):
    result = subprocess.run([sys.executable, "-m", "dvc", *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"compare: dvc {' '.join(arguments)} failed: {result.stderr.strip()}")
    return result.stdout


def table_or(markdown, when_empty):
    """DVC's --md table, or a sentence when it has no rows (DVC prints the header alone)."""
    return markdown if len(markdown.splitlines()) > 2 else when_empty


def revisions(old, new):
    """The revisions as DVC's diff commands take them: none given means the workspace."""
    return [old] if new == WORKSPACE else [old, new]


def read_predictions(revision):
    text = dvc.api.read(PREDICTIONS, rev=None if revision == WORKSPACE else revision)
    return pd.read_csv(io.StringIO(text))


def rendered_plots(old, new, folder):
    """Every Vega plot of `dvc plots diff`, both runs in each, as (title, PNG file name)."""
    plots = json.loads(run_dvc("plots", "diff", *revisions(old, new), "--json"))
    images = []
    for name, renderings in plots["data"].items():
        for rendering in renderings:
            if rendering["type"] != "vega":
                continue
            spec = rendering["content"]
            file_name = re.sub(r"[^\w]+", "_", name).strip("_") + ".png"
            with atomic_path(folder / file_name) as temporary:
                temporary.write_bytes(vl_convert.vegalite_to_png(spec, scale=1.5))
            title = spec.get("title", {}).get("text") or name
            images.append((title, file_name))
    return images


def changed_cells(old_predictions, new_predictions, old, new):
    """Confusion cells (actual, predicted) whose count differs, errors first."""
    old_counts = confusion_counts(old_predictions).stack()
    new_counts = confusion_counts(new_predictions).stack()
    cells = pd.DataFrame({old: old_counts, new: new_counts})
    cells["change"] = cells[new] - cells[old]
    cells = cells[cells["change"] != 0].rename_axis(["actual", "predicted"]).reset_index()
    cells["right answer"] = cells["actual"] == cells["predicted"]
    return cells.sort_values(["right answer", "actual", "predicted"]).drop(columns="right answer")


def disagreements(old_predictions, new_predictions, folder):
    """Grids of test digits that the new run gets right and the old one wrong, and back."""
    test_images, _ = load_split("test")
    both = old_predictions.merge(new_predictions, on=["image", "actual"],
                                 suffixes=("_old", "_new"))
    old_right = both["predicted_old"] == both["actual"]
    new_right = both["predicted_new"] == both["actual"]
    grids = []
    for file_name, caption, rows in [
        ("fixed.png", "right in the new run, wrong in the old", both[new_right & ~old_right]),
        ("broken.png", "wrong in the new run, right in the old", both[old_right & ~new_right]),
    ]:
        shown = rows.head(DIGITS_SHOWN)
        if len(shown):
            titles = [f"actual:{row.actual}\nold:{row.predicted_old} new:{row.predicted_new}"
                      for row in shown.itertuples()]
            save(digit_grid(test_images[shown["image"]], titles, ["black"] * len(shown)),
                 folder / file_name)
        grids.append((caption, len(rows), file_name if len(shown) else None))
    return grids


def report(old, new, folder):
    old_predictions, new_predictions = read_predictions(old), read_predictions(new)
    params = run_dvc("params", "diff", *revisions(old, new), "--md").strip()
    metrics = run_dvc("metrics", "diff", *revisions(old, new), "--md").strip()
    cells = changed_cells(old_predictions, new_predictions, old, new)
    sections = [
        f"# `{old}` against `{new}`",
        "Written by `python -m stages.commands.compare`; the new run is the second.",
        "## Params\n\n" + table_or(params, "No parameter differs."),
        "## Metrics\n\n" + table_or(metrics, "No metric differs."),
        "## Plots\n\n" + "\n\n".join(f"![{title}]({file_name})"
                                     for title, file_name in rendered_plots(old, new, folder)),
        "## Confusion cells that changed\n\n" + (cells.to_markdown(index=False) if len(cells)
                                                  else "Every cell has the same count."),
    ]
    for caption, count, file_name in disagreements(old_predictions, new_predictions, folder):
        heading = f"## Test digits {caption}: {count}"
        sections.append(heading + (f"\n\n![{caption}]({file_name})" if file_name else ""))
    return "\n\n".join(sections) + "\n"


def main(arguments=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="a Git revision or experiment name")
    parser.add_argument("new", nargs="?", default=WORKSPACE,
                        help="a Git revision or experiment name (default: the workspace)")
    parser.add_argument("--out", type=Path, default=Path("compare"),
                        help="folder for README.md and its images (default: compare/)")
    options = parser.parse_args(arguments)
    options.out.mkdir(parents=True, exist_ok=True)
    text = report(options.old, options.new, options.out)
    with atomic_path(options.out / "README.md") as temporary:
        temporary.write_text(text)
    print(f"compare: {options.out / 'README.md'}")


if __name__ == "__main__":
    main()
