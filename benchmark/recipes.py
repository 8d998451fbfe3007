"""A recipe of conf/recipe/ composed as `dvc exp run -S recipe=NAME` composes it (Hydra, conf/),
so scripts and tests use the same files the pipeline does."""

from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"


def recipe_params(name="tutorial", overrides=(), conf=CONF):
    """params.yaml's values for recipe `name` with further `key=value` overrides, without the
    stamp (conf/hydra_plugins)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(conf), version_base=None):
        config = compose("config", overrides=[f"recipe={name}", *overrides])
    values = OmegaConf.to_container(config, resolve=False)
    values.pop("written_by")
    return values
