"""The recipe lines of docs/recipes.md as DVC `-S` overrides, so scripts and tests run what it
shows."""

import shlex
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"


def recipe_overrides(name, page=RECIPES):
    """The -S values of the page's `dvc exp run -n NAME ...` command (continued lines joined)."""
    lines = Path(page).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"dvc exp run -n {name} "))
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
    words = shlex.split(" ".join(line.rstrip("\\") for line in lines[start : end + 1]))
    return [value for flag, value in zip(words, words[1:]) if flag == "-S"]
