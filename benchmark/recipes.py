"""The README's recipe lines as DVC `-S` overrides, so scripts and tests run what it shows."""

import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def strong_recipe_overrides(readme=README):
    """The -S values of the README's `dvc exp run -n strong ...` command (continued lines joined)."""
    lines = Path(readme).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("dvc exp run -n strong "))
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
    words = shlex.split(" ".join(line.rstrip("\\") for line in lines[start : end + 1]))
    return [value for flag, value in zip(words, words[1:]) if flag == "-S"]
