import copy
import json
import re

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.lib import params, reference
from tests.conftest import ROOT, project_params, run_stage

MODELS = dict(reference.stage_models())


def check_section(values, section):
    return params.check(values, section, MODELS[section])


@pytest.mark.parametrize("section", reference.STAGES)
def test_committed_params_are_valid(section):
    check_section(project_params(), section)


def test_every_key_of_params_yaml_belongs_to_a_stage():
    assert set(project_params()) == {*reference.STAGES, *reference.UNSTAGED_KEYS}


def test_defaults_are_the_seed_recipe():
    train = project_params()["train"]
    assert (train["epochs"], train["batch_size"], train["precision"]) == (8, 100, "mixed_bfloat16")
    assert train["optimizer"] == {"name": "adadelta", "learning_rate": 1.0}
    assert (train["lr_schedule"], train["lr_decay"], train["lr_warmup_epochs"]) == ("exponential", 1.0, 0)
    assert train["label_smoothing"] == 0.0
    assert train["augment"] == {"rotation": 0, "shift": 0.0, "zoom": 0.0, "thickness": 0.0,
                                "elastic": 0.0, "blur": 0.0, "light": 0.0, "noise": 0.0,
                                "erase": 0.0}
    assert train["model"]["batch_norm"] is False and train["model"]["normalize_ink"] is False
    assert project_params()["preprocess"] == {"train_limit": None, "validation_split": 0.0, "seed": 42}
    assert project_params()["ood"] == {"count": None, "draws": 3, "not_digits": 50, "seed": 0}
    mnist_c = project_params()["mnist_c"]
    assert mnist_c["count"] is None and len(mnist_c["corruptions"]) == 15
    assert project_params()["plot"]["grid_size"] == 100


BAD_PARAMS = [
    ("train", ["epochs"], 0, "train.epochs: must be >= 1, got 0"),
    ("train", ["epochs"], 2.5, "train.epochs: must be an integer, got 2.5"),
    ("train", ["epochs"], True, "train.epochs: must be an integer, got True"),
    ("train", ["batch_size"], "100", "train.batch_size: must be an integer, got '100'"),
    ("train", ["optimizer", "learning_rate"], 0, "train.optimizer.learning_rate: must be > 0"),
    ("train", ["optimizer", "name"], "adamw",
     "train.optimizer.name: must be one of adadelta, adam, rmsprop, sgd, got 'adamw'"),
    ("train", ["optimizer"], {"name": "adam"}, "train.optimizer.learning_rate: missing"),
    ("train", ["optimizer"], {"learning_rate": 1.0}, "train.optimizer: must be a mapping with a name"),
    ("train", ["optimizer", "rh"], 0.9, "train.optimizer.rh: unknown key (did you mean rho?)"),
    ("train", ["model", "dropout"], 1.0, "train.model.dropout: must be < 1, got 1.0"),
    ("train", ["model", "activation"], "relux", "train.model.activation: must be one of elu, gelu"),
    ("train", ["model", "conv_stack"], [{"filters": 32, "kernel_size": 15}, {"filters": 64, "kernel_size": 15}],
     "train.model.conv_stack: item 1 ({'filters': 64, 'kernel_size': 15}) needs a 15x15 feature map"),
    ("train", ["model", "conv_stack"], [{"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same"}] * 5
     + [{"max_pool": 2}], "train.model.conv_stack: item 5 ({'max_pool': 2}) needs a 2x2 feature map"),
    ("train", ["model", "conv_stack"], [{"filters": 32, "kernel": 3}],
     "train.model.conv_stack: item 0: kernel: unknown key (did you mean kernel_size?)"),
    ("train", ["model", "conv_stack"], [{"filters": 32}], "train.model.conv_stack: item 0: kernel_size: missing"),
    ("train", ["model", "conv_stack"], [{"filters": 32, "kernel_size": 3, "padding": "full"}],
     "item 0: padding: must be one of same, valid, got 'full'"),
    ("train", ["model", "conv_stack"], [{"max_pool": 2, "dropout": 0.5}], "item 0: dropout: not allowed here"),
    ("train", ["model", "conv_stack"], [{"filters": 32, "max_pool": 2}], "item 0: filters: not allowed here"),
    ("train", ["model", "conv_stack"], [{"dropout": 1.5}], "item 0: dropout: must be < 1, got 1.5"),
    ("train", ["model", "conv_stack"], [[32, 3]], "train.model.conv_stack: item 0: must be a mapping"),
    ("train", ["model", "batch_norm"], 1, "train.model.batch_norm: must be true or false, got 1"),
    ("train", ["lr_decay"], 0, "train.lr_decay: must be > 0, got 0"),
    ("train", ["lr_schedule"], "onecycle", "train.lr_schedule: must be one of cosine, exponential"),
    ("train", ["lr_warmup_epochs"], 1, "train.lr_warmup_epochs: applies to lr_schedule cosine only"),
    ("train", ["lr_warmup_epochs"], -1, "train.lr_warmup_epochs: must be >= 0, got -1"),
    ("train", ["label_smoothing"], 1.0, "train.label_smoothing: must be < 1, got 1.0"),
    ("train", ["optimizer", "use_ema"], "yes", "train.optimizer.use_ema: must be true or false"),
    ("train", ["optimizer", "ema_momentum"], 1, "train.optimizer.ema_momentum: must be < 1"),
    ("train", ["optimizer", "ema"], True, "train.optimizer.ema: unknown key (did you mean"),
    ("report", ["tutorial", "test_accuracy"], 99.3, "report.tutorial.test_accuracy: must be <= 1"),
    ("train", ["lr_decay"], 1.2, "train.lr_decay: must be <= 1, got 1.2"),
    ("train", ["augment", "rotation"], -10, "train.augment.rotation: must be >= 0, got -10"),
    ("train", ["augment", "shift"], 1, "train.augment.shift: must be < 1, got 1"),
    ("train", ["augment", "zom"], 0.1, "train.augment.zom: unknown key (did you mean zoom?)"),
    ("train", ["epoch"], 8, "train.epoch: unknown key (did you mean epochs?)"),
    ("preprocess", ["train_limit"], -5, "preprocess.train_limit: must be >= 1, got -5"),
    ("preprocess", ["validation_split"], 1.0, "preprocess.validation_split: must be < 1"),
    ("ood", ["count"], 2000, "ood.count: must be <= 597, got 2000"),
    ("train", ["augment", "thickness"], 1.5, "train.augment.thickness: must be <= 1, got 1.5"),
    ("train", ["augment", "elastic"], -1, "train.augment.elastic: must be >= 0, got -1"),
    ("train", ["augment", "blur"], 3, "train.augment.blur: must be <= 2, got 3"),
    ("train", ["augment", "light"], 1.5, "train.augment.light: must be <= 1, got 1.5"),
    ("train", ["augment", "noise"], 0.6, "train.augment.noise: must be <= 0.5, got 0.6"),
    ("train", ["augment", "erase"], 1, "train.augment.erase: must be < 1, got 1"),
    ("train", ["model", "normalize_ink"], "yes", "train.model.normalize_ink: must be true or false, got 'yes'"),
    ("plot", ["grid_size"], 50, "plot.grid_size: must be a square number"),
    ("evaluate", ["batch_size"], None, "evaluate.batch_size: must be an integer, got None"),
    ("train", ["precision"], "float16", "train.precision: must be one of float32, mixed_bfloat16"),
    ("train", ["xla"], "yes", "train.xla: must be true or false, got 'yes'"),
    ("train", ["distribute"], "multi", "train.distribute: must be one of mirrored, none"),
    ("train", ["model", "conv_stack"], [{"filters": 0, "kernel_size": 3}], "train.model.conv_stack: item 0: filters: must be >= 1"),
    ("train", ["model", "dense_units"], 128, "train.model.dense_units: must be a list, got 128"),
    ("train", ["model", "dropout"], -0.1, "train.model.dropout: must be >= 0, got -0.1"),
    ("train", ["model", "batch_nrom"], True, "train.model.batch_nrom: unknown key (did you mean batch_norm?)"),
    ("fetch", ["timeout"], 0, "fetch.timeout: must be > 0, got 0"),
    ("fetch", ["retries"], -1, "fetch.retries: must be >= 0, got -1"),
    ("fetch", ["timeouts"], 5, "fetch.timeouts: unknown key (did you mean timeout?)"),
    ("plot", ["seed"], "zero", "plot.seed: must be an integer, got 'zero'"),
    ("preprocess", ["train_limt"], 10, "preprocess.train_limt: unknown key (did you mean train_limit?)"),
]


@pytest.mark.parametrize("section, path, value, message", BAD_PARAMS, ids=lambda v: str(v)[:30])
def test_bad_value_names_the_key(section, path, value, message):
    bad = copy.deepcopy(project_params())
    target = bad[section]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(params.ParamsError) as error:
        check_section(bad, section)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_missing_key_is_named():
    bad = copy.deepcopy(project_params())
    del bad["train"]["seed"]
    with pytest.raises(params.ParamsError, match=r"^train\.seed: missing$"):
        check_section(bad, "train")


def test_unreadable_params_file_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    result = run_stage("train", tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # The last line is ours; TensorFlow's start-up chatter may come before it.
    assert result.stderr.strip().splitlines()[-1].startswith("params.yaml: not valid YAML:")


def test_stage_exits_with_one_line_before_reading_data(tmp_path):
    bad = copy.deepcopy(project_params())
    bad["preprocess"]["train_limit"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    result = run_stage("preprocess", tmp_path, check=False)  # there is no data/ here at all
    assert result.returncode == 1
    assert result.stderr.strip() == "params.yaml: preprocess.train_limit: must be >= 1, got 0"


def test_optional_arguments_are_accepted():
    good = copy.deepcopy(project_params())
    good["train"]["optimizer"]["rho"] = 0.9
    good["train"]["model"]["conv_stack"] = [
        {"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same"},
        {"dropout": 0.25},
        {"max_pool": 2},
    ]
    check_section(good, "train")


@pytest.mark.parametrize("changes, message", [
    ({"lr_schedule": "cosine", "lr_decay": 0.8}, "train.lr_decay: applies to lr_schedule exponential only"),
    ({"lr_schedule": "cosine", "lr_warmup_epochs": 8}, "train.lr_warmup_epochs: must be < train.epochs (8), got 8"),
])
def test_schedule_keys_must_agree(changes, message):
    bad = copy.deepcopy(project_params())
    bad["train"].update(changes)
    with pytest.raises(params.ParamsError, match=re.escape(message)):
        check_section(bad, "train")


def reference_keys():
    return re.findall(r"^\| `([\w.]+)` \|", reference.reference(), re.M)


def test_every_key_has_one_line_of_meaning():
    page = reference.reference()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert len(rows) == len(reference_keys()) > 30
    assert all(not row.endswith("| None |") for row in rows), "a key without a description"


def test_the_reference_names_every_key_of_params_yaml():
    def leaves(values, prefix=""):
        for key, value in values.items():
            if isinstance(value, dict) and key not in ("optimizer", "ensemble"):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    stage_values = {key: value for key, value in project_params().items()
                    if key not in reference.UNSTAGED_KEYS}
    assert sorted(leaves(stage_values)) == sorted(reference_keys())


def test_parameter_reference_and_json_schema_are_the_ones_the_models_write():
    assert (ROOT / "docs/parameters.md").read_text() == reference.reference(), \
        "docs/parameters.md is stale: run `python -m stages.lib.reference`"
    assert json.loads((ROOT / "conf/params.schema.json").read_text()) == reference.json_schema(), \
        "conf/params.schema.json is stale: run `python -m stages.lib.reference`"


def test_the_json_schema_accepts_the_committed_files_and_refuses_a_typo():
    schema = reference.json_schema()
    jsonschema.validate(project_params(), schema)
    jsonschema.validate(yaml.safe_load((ROOT / "conf/config.yaml").read_text()), schema)
    bad = copy.deepcopy(project_params())
    bad["train"]["epoch"] = 8
    with pytest.raises(jsonschema.ValidationError, match="epoch"):
        jsonschema.validate(bad, schema)


def schema_at(schema, path, values):
    """The JSON Schema of the value at `path` in params.yaml's `values`, read from the schema the
    editors use (a tagged union resolved by the value's own tag)."""
    definitions, node = schema["$defs"], schema
    for key in path:
        node = node["properties"][key]
        node = definitions[node["$ref"].split("/")[-1]] if "$ref" in node else node
        values = values[key]
        if "discriminator" in node:
            tag = node["discriminator"]["propertyName"]
            node = definitions[node["discriminator"]["mapping"][values[tag]].split("/")[-1]]
    return node


def leaf_paths(values, path=()):
    """Every key of params.yaml whose value is not a mapping, as a path of keys."""
    for key, value in values.items():
        if isinstance(value, dict):
            yield from leaf_paths(value, (*path, key))
        else:
            yield (*path, key)


JSON_VALUES = {
    "integer": st.integers(),
    "number": st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "string": st.text(max_size=8),
    "array": st.lists(st.integers(), max_size=2),
    "object": st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    "null": st.none(),
}


def invalid_values(field):
    """Values the field's schema refuses: another JSON type, or a number out of its bounds."""
    options = field.get("anyOf", [field])
    allowed = {option.get("type") for option in options}
    if "number" in allowed:
        allowed.add("integer")
    wrong_types = [JSON_VALUES[kind] for kind in JSON_VALUES if kind not in allowed]
    if field.get("type") == "boolean":
        wrong_types.append(st.integers(0, 1))
    for option in options:
        choices = option.get("enum", [option["const"]] if "const" in option else None)
        if choices:
            wrong_types.append(st.text(max_size=12).filter(lambda text: text not in choices))
        integral = option.get("type") == "integer"
        below = option.get("minimum", option.get("exclusiveMinimum"))
        above = option.get("maximum", option.get("exclusiveMaximum"))
        if below is not None:
            under = below - 1 if "minimum" in option and integral else below
            wrong_types.append(st.integers(max_value=int(under)) if integral
                               else st.floats(max_value=below, exclude_max="minimum" in option))
        if above is not None:
            over = above + 1 if "maximum" in option and integral else above
            wrong_types.append(st.integers(min_value=int(over)) if integral
                               else st.floats(min_value=above, exclude_min="maximum" in option,
                                              allow_infinity=False))
    return st.one_of(wrong_types)


STAGE_KEYS = [path for path in leaf_paths(project_params()) if path[0] in reference.STAGES]


@settings(max_examples=150, deadline=None)
@given(data=st.data(), path=st.sampled_from(STAGE_KEYS))
def test_any_invalid_value_of_any_key_is_one_line_naming_it(data, path):
    committed = project_params()
    field = schema_at(reference.json_schema(), path, committed)
    value = data.draw(invalid_values(field), label=".".join(path))
    bad = copy.deepcopy(committed)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(params.ParamsError) as error:
        check_section(bad, path[0])
    message = str(error.value)
    assert message.startswith(".".join(path) + ":") and "\n" not in message


@pytest.mark.parametrize("section", [section for section in reference.STAGES
                                     if "seed" in project_params()[section]])
def test_every_seed_is_one_that_numpy_tensorflow_and_jax_accept(section):
    bad = copy.deepcopy(project_params())
    bad[section]["seed"] = 2**32  # np.random.seed and keras.utils.set_random_seed refuse it
    with pytest.raises(params.ParamsError, match=rf"^{section}\.seed: must be <= 4294967295"):
        check_section(bad, section)
    bad[section]["seed"] = 2**32 - 1
    check_section(bad, section)
