"""What DVC's Hydra composition lacks for this project, loaded by DVC before it composes conf/
into params.yaml (`hydra.plugins_path: conf` in .dvc/config).

1. A stamp. conf/config.yaml's first key, `written_by`, resolves to a digest of the composed
   values. Before composing, the digest of params.yaml as it stands is checked against its stamp:
   a hand edit (or `dvc exp run --no-hydra -S ...`) that composing conf/ again would silently
   drop (treeverse/dvc#8355) stops `dvc exp run` with one line instead.
2. One line for an unknown recipe: Hydra's message spans a dozen lines, with its search path, and
   DVC prints it as an unexpected error.
"""

import hashlib
import json
from pathlib import Path

import yaml
from hydra._internal import defaults_list
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

STAMP_KEY = "written_by"
STAMP = "dvc exp run, from conf/; digest "
# Where DVC writes the composition: the project's root, beside conf/, from whichever folder
# `dvc exp run` was typed in.
PARAMS_FILE = Path(__file__).resolve().parents[3] / "params.yaml"


def digest(values):
    """Of every value but the stamp."""
    rest = {key: value for key, value in values.items() if key != STAMP_KEY}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:12]


def hand_edited(path=PARAMS_FILE):
    """Whether params.yaml differs from what the composition that stamped it wrote."""
    if not path.exists():
        return False
    values = yaml.safe_load(path.read_text()) or {}
    return str(values.get(STAMP_KEY, "")) != STAMP + digest(values)


def stamp(*, _root_):
    if hand_edited():
        raise SystemExit(
            f"{PARAMS_FILE.name}: edited since `dvc exp run` wrote it from conf/, and writing it again "
            "would drop the edit: make it in conf/config.yaml or as -S key=value, run "
            "`dvc exp run --no-hydra` to use params.yaml as it is, or `git checkout params.yaml`")
    composed = OmegaConf.masked_copy(_root_, [key for key in _root_ if key != STAMP_KEY])
    return STAMP + digest(OmegaConf.to_container(composed, resolve=True))


OmegaConf.register_new_resolver("mnist_dvc_stamp", stamp, replace=True)

_config_not_found_error = defaults_list.config_not_found_error


def _one_line_for_a_recipe(repo, tree):
    try:
        _config_not_found_error(repo, tree)
    except MissingConfigException as error:
        if error.options and error.missing_cfg_file.startswith("recipe/"):
            raise SystemExit(
                f"recipe={error.missing_cfg_file.removeprefix('recipe/')}: no such recipe; "
                f"the recipes are {', '.join(error.options)} (conf/recipe/)") from None
        raise


defaults_list.config_not_found_error = _one_line_for_a_recipe
