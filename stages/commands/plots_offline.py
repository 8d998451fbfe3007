"""`dvc plots show` and `dvc plots diff` with a page that draws every plot without a network.

DVC's page loads Vega from a CDN, so offline only its PNG figures appear. This writes an HTML
template that carries Vega, Vega-Lite and Vega-Embed inline, taken from vl-convert-python at run
time, and passes it to DVC with --html-template; all other arguments go to `dvc plots` as given:

    python -m stages.commands.plots_offline show
    python -m stages.commands.plots_offline diff main --open
"""

import subprocess
import sys
from pathlib import Path

import vl_convert

from stages.lib.atomic import atomic_path

TEMPLATE = ".dvc/tmp/offline_plots.html"  # in the project's root, wherever the command runs
VEGA_LITE = "5.21"  # DVC's templates are Vega-Lite 5 specs

# DVC fills {plot_divs}; each plot's script calls the global vegaEmbed that the bundle sets. The
# bundle runs in a function so that its top-level names cannot clash with DVC's `var spec`.
PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <script>(function () {{
{bundle}
}})();</script>
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def write_template():
    """The page template, written into the DVC project that holds the current folder."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        path = Path(Repo.find_root()) / TEMPLATE
    except NotDvcRepoError:
        raise SystemExit(f"plots: {Path.cwd()} is not inside a DVC project") from None
    with atomic_path(path) as temporary:
        temporary.write_text(PAGE.format(bundle=vl_convert.javascript_bundle(vl_version=VEGA_LITE)))
    return path


def main(arguments):
    command = [sys.executable, "-m", "dvc", "plots", *arguments]
    if not {"-h", "--help"} & set(arguments):
        command += ["--html-template", str(write_template())]
    return subprocess.run(command).returncode


def cli():
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    cli()
