"""The one way a stage reads params.yaml: its own section, checked against SCHEMA.

A user's mistake ends the stage with one line naming the dotted key and the value given,
before any data is read or model built; a typo never falls back to a default.
"""

import difflib
import re
from pathlib import Path

import yaml

PARAMS_FILE = Path("params.yaml")

IMAGE_SIDE = 28  # MNIST's images are 28x28; the model's layers must fit in them.
OOD_DIGITS = 1797  # the UCI digits scikit-learn ships, which stages/ood.py draws

OPTIMIZER_ARGUMENTS = {
    "adadelta": {"learning_rate", "rho", "epsilon"},
    "adam": {"learning_rate", "beta_1", "beta_2", "epsilon"},
    "rmsprop": {"learning_rate", "rho", "momentum", "epsilon"},
    "sgd": {"learning_rate", "momentum"},
}
# Arguments of every Keras optimizer: weight decay, and an exponential moving average of the
# weights that replaces them when training ends.
SHARED_OPTIMIZER_ARGUMENTS = {"weight_decay", "use_ema", "ema_momentum"}
ACTIVATIONS = {"relu", "elu", "gelu", "selu", "silu", "tanh", "sigmoid"}
PRECISIONS = {"float32", "mixed_bfloat16", "mixed_float16"}
DISTRIBUTIONS = {"none", "mirrored"}
LR_SCHEDULES = {"exponential", "cosine"}
BACKENDS = {"tensorflow", "jax"}


class ParamsError(ValueError):
    """A value in params.yaml that a stage cannot use."""


def _allowing(description):
    """Label a check with the values it allows, for the parameter reference (reference())."""
    def label(check):
        check.allowed = description
        return check

    return label


def _number(minimum=None, maximum=None, integer=False, below_maximum=False, above_minimum=False):
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if above_minimum else '>='} {minimum}")
    if maximum is not None:
        bounds.append(f"{'<' if below_maximum else '<='} {maximum}")

    @_allowing(" ".join(["an integer" if integer else "a number", " and ".join(bounds)]).strip())
    def check(value):
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            return "must be an integer" if integer else "must be a number"
        if minimum is not None and (value <= minimum if above_minimum else value < minimum):
            return f"must be {'>' if above_minimum else '>='} {minimum}"
        if maximum is not None and (value >= maximum if below_maximum else value > maximum):
            return f"must be {'<' if below_maximum else '<='} {maximum}"
        return None

    return check


def _optional(check):
    return _allowing(f"null, or {check.allowed}")(
        lambda value: None if value is None else check(value))


def _one_of(names):
    listed = ", ".join(sorted(names))
    return _allowing(f"one of {listed}")(
        lambda value: None if value in names else f"must be one of {listed}")


def _list_of(check, non_empty=True):
    @_allowing(f"a {'non-empty ' if non_empty else ''}list, each item {check.allowed}")
    def check_list(value):
        if not isinstance(value, list) or (non_empty and not value):
            return "must be a non-empty list" if non_empty else "must be a list"
        problems = [check(item) for item in value]
        return next((f"item {index}: {p}" for index, p in enumerate(problems) if p), None)

    return check_list


@_allowing("true or false")
def _boolean(value):
    return None if isinstance(value, bool) else "must be true or false"


@_allowing("URLs: http://, https:// or file://")
def _url(value):
    if not isinstance(value, str) or not re.match(r"^(https?|file)://", value):
        return "must be an http://, https:// or file:// URL"
    return None


@_allowing("a mapping of file name to MD5")
def _md5_table(value):
    if not isinstance(value, dict) or not value:
        return "must map each file name to the MD5 of its decompressed content"
    for name, digest in value.items():
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{32}", digest):
            return f"{name}: must be 32 lowercase hex digits"
    return None


POSITIVE = _number(0, above_minimum=True)
NON_NEGATIVE = _number(0)
OPTIMIZER_ARGUMENT_CHECKS = {
    "learning_rate": POSITIVE,
    "use_ema": _boolean,
    "ema_momentum": _number(0, 1, below_maximum=True),
}


@_allowing("{name: adadelta, adam, rmsprop or sgd; learning_rate; that Keras optimizer's "
           "own arguments; weight_decay, use_ema, ema_momentum}")
def _optimizer(value):
    if not isinstance(value, dict) or "name" not in value or "learning_rate" not in value:
        return "must be a mapping with a name, a learning_rate and the optimizer's other arguments"
    name = value["name"]
    if name not in OPTIMIZER_ARGUMENTS:
        return f"name must be one of {', '.join(sorted(OPTIMIZER_ARGUMENTS))}"
    for argument, given in value.items():
        if argument == "name":
            continue
        known = OPTIMIZER_ARGUMENTS[name] | SHARED_OPTIMIZER_ARGUMENTS
        if argument not in known:
            return f"{name} takes no argument {argument!r}" + _suggestion(
                argument, known, prefix=""
            )
        check = OPTIMIZER_ARGUMENT_CHECKS.get(argument, NON_NEGATIVE)
        problem = check(given)
        if problem:
            return f"{argument} {problem}"
    return None


POSITIVE_INT = _number(1, integer=True)
DROPOUT_RATE = _number(0, 1, below_maximum=True)
CONVOLUTION = {
    "filters": POSITIVE_INT,
    "kernel_size": POSITIVE_INT,
    "strides": POSITIVE_INT,
    "padding": _one_of({"valid", "same"}),
}
REQUIRED_CONVOLUTION_KEYS = ("filters", "kernel_size")


@_allowing("a convolution {filters, kernel_size, strides, padding}, {max_pool: size} or "
           "{dropout: rate}")
def _conv_stack_item(item):
    """A convolution (Keras Conv2D's own argument names), {max_pool: size} or {dropout: rate}."""
    if not isinstance(item, dict):
        return "must be a mapping: a convolution {filters, kernel_size, strides, padding}, " \
               "{max_pool: size} or {dropout: rate}"
    for key, check in (("max_pool", POSITIVE_INT), ("dropout", DROPOUT_RATE)):
        if key in item:
            if len(item) > 1:
                return f"{key} must be alone in its item"
            problem = check(item[key])
            return f"{key} {problem}" if problem else None
    for key, value in item.items():
        if key not in CONVOLUTION:
            return f"unknown key {key!r}" + _suggestion(
                str(key), [*CONVOLUTION, "max_pool", "dropout"], prefix=""
            )
        if problem := CONVOLUTION[key](value):
            return f"{key} {problem}"
    missing = [key for key in REQUIRED_CONVOLUTION_KEYS if key not in item]
    return f"a convolution needs {' and '.join(missing)}" if missing else None


@_allowing("a square integer (16, 100, ...)")
def _square(value):
    if problem := POSITIVE_INT(value):
        return problem
    return None if round(value**0.5) ** 2 == value else "must be a square number (100 = 10x10)"


SCHEMA = {
    "fetch": {
        "timeout": _number(0, above_minimum=True),
        "retries": _number(0, integer=True),
    },
    "preprocess": {
        "train_limit": _optional(POSITIVE_INT),
        "validation_split": _number(0, 1, below_maximum=True),
        "seed": _number(0, integer=True),
        "ood": {
            "count": _optional(_number(1, OOD_DIGITS, integer=True)),
            "seed": _number(0, integer=True),
        },
    },
    "train": {
        "backend": _one_of(BACKENDS),
        "seed": _number(0, integer=True),
        "epochs": POSITIVE_INT,
        "batch_size": POSITIVE_INT,
        "precision": _one_of(PRECISIONS),
        "xla": _boolean,
        "distribute": _one_of(DISTRIBUTIONS),
        "optimizer": _optimizer,
        "lr_schedule": _one_of(LR_SCHEDULES),
        "lr_decay": _number(0, 1, above_minimum=True),
        "lr_warmup_epochs": NON_NEGATIVE,
        "label_smoothing": _number(0, 1, below_maximum=True),
        "augment": {
            "rotation": _number(0, 180),
            "shift": _number(0, 1, below_maximum=True),
            "zoom": _number(0, 1, below_maximum=True),
            "thickness": _number(0, 1),
            "elastic": _number(0, 4),
            "blur": _number(0, 2),
            "contrast": _number(0, 1, below_maximum=True),
        },
        "model": {
            "conv_stack": _list_of(_conv_stack_item, non_empty=False),
            "batch_norm": _boolean,
            "dense_units": _list_of(POSITIVE_INT, non_empty=False),
            "dropout": DROPOUT_RATE,
            "activation": _one_of(ACTIVATIONS),
        },
    },
    "evaluate": {
        "batch_size": POSITIVE_INT,
    },
    "plot": {
        "grid_size": _square,
        "seed": _number(0, integer=True),
    },
    "report": {
        "tutorial": {
            "test_accuracy": _number(0, 1),
            "test_loss": _number(0),
            "train_accuracy": _number(0, 1),
            "train_loss": _number(0),
        },
    },
}


# One line a key for the parameter reference (docs/parameters.md, written by
# `python -m stages.params`); a test fails when a key of SCHEMA has none.
MEANINGS = {
    "fetch.timeout": "seconds without data before a download is abandoned",
    "fetch.retries": "extra attempts per mirror and file after a network error",
    "preprocess.train_limit": "keep the first N training images (null: all 60,000)",
    "preprocess.validation_split": "fraction of the training images held out as validation images",
    "preprocess.seed": "shuffles the training images before the validation split",
    "preprocess.ood.count": "how many of scikit-learn's 1,797 UCI digits to draw (null: all)",
    "preprocess.ood.seed": "which digits are drawn, and how (size, polarity, trouble)",
    "train.backend": "Keras' backend: tensorflow (fastest on CPUs) or jax (for GPUs)",
    "train.seed": "every random stream of training: batch order, dropout, augmentation",
    "train.epochs": "passes over the training images",
    "train.batch_size": "images a training step",
    "train.precision": "Keras mixed-precision policy; mixed_bfloat16 falls back to float32 "
                       "where the CPU lacks bfloat16",
    "train.xla": "compile training steps with XLA (TensorFlow; JAX always compiles)",
    "train.distribute": "none, or mirrored: one replica a GPU",
    "train.optimizer": "the Keras optimizer and its arguments",
    "train.lr_schedule": "exponential (x lr_decay after every epoch) or cosine (warm-up, "
                         "then half a cosine to 0)",
    "train.lr_decay": "learning-rate factor after every epoch (exponential schedule)",
    "train.lr_warmup_epochs": "epochs of linear warm-up (cosine schedule)",
    "train.label_smoothing": "targets of 1 - s for the right digit, s / 10 spread over all",
    "train.augment.rotation": "largest random rotation, degrees either way",
    "train.augment.shift": "largest random shift, fraction of the image's side",
    "train.augment.zoom": "largest random zoom in or out, fraction",
    "train.augment.thickness": "strokes up to this fraction of a 3x3 dilation thicker, or "
                               "erosion thinner",
    "train.augment.elastic": "pixels: the largest displacement of a smooth random distortion",
    "train.augment.blur": "pixels: the largest Gaussian blur (sigma)",
    "train.augment.contrast": "fraction: how much fainter the ink may get",
    "train.model.conv_stack": "the convolution stack, in order",
    "train.model.batch_norm": "batch normalization between each convolution or dense layer "
                              "and its activation",
    "train.model.dense_units": "units of each hidden dense layer",
    "train.model.dropout": "dropout rate before each dense layer",
    "train.model.activation": "activation of the convolutions and hidden dense layers",
    "evaluate.batch_size": "images a prediction batch (no effect on the scores)",
    "plot.grid_size": "digits in each picture grid",
    "plot.seed": "which digits the grids show",
    "report.tutorial.test_accuracy": "the 2018 tutorial run's test accuracy, shown beside each run",
    "report.tutorial.test_loss": "the tutorial run's test loss",
    "report.tutorial.train_accuracy": "the tutorial run's training-set accuracy",
    "report.tutorial.train_loss": "the tutorial run's training-set loss",
}
REFERENCE_PATH = Path("docs/parameters.md")


def dotted_keys(schema=SCHEMA, prefix=""):
    """(dotted key, check) for every leaf of the schema, in params.yaml's order."""
    for key, check in schema.items():
        if isinstance(check, dict):
            yield from dotted_keys(check, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", check


def reference(path=PARAMS_FILE):
    """docs/parameters.md: every key of params.yaml with its default, what it allows and means."""
    defaults = _read(path)
    rows = []
    for dotted, check in dotted_keys():
        value = defaults
        for part in dotted.split("."):
            value = value[part]
        default = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        default = default.removesuffix("\n...").replace("|", "\\|")
        rows.append(f"| `{dotted}` | `{default}` | {check.allowed} | {MEANINGS[dotted]} |")
    return "\n".join([
        "# Parameters",
        "",
        "Every key of `params.yaml`, its default there, what `stages/params.py` accepts and what "
        "it means. Written by `python -m stages.params` from the schema; a test fails when this "
        "page and the schema disagree. Each stage reads its own section; evaluate and "
        "predict also read `train.backend`.",
        "",
        "| key | default | allowed | meaning |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


def _suggestion(key, known, prefix):
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _check(values, schema, path):
    if not isinstance(values, dict):
        raise ParamsError(f"{path or 'the file'}: must be a mapping, got {values!r}")
    prefix = f"{path}." if path else ""
    for key in values:
        if key not in schema:
            raise ParamsError(
                f"{prefix}{key}: unknown key" + _suggestion(str(key), schema, prefix=prefix)
            )
    for key, check in schema.items():
        if key not in values:
            raise ParamsError(f"{prefix}{key}: missing")
        if isinstance(check, dict):
            _check(values[key], check, f"{prefix}{key}")
        elif problem := check(values[key]):
            raise ParamsError(f"{prefix}{key}: {problem}, got {values[key]!r}")


def _check_model_fits(conv_stack):
    """Every convolution and pooling must find at least one pixel: name the first that does not."""
    side = IMAGE_SIDE
    for index, item in enumerate(conv_stack):
        if "dropout" in item:
            continue
        if "max_pool" in item:
            side, needed = side // item["max_pool"], item["max_pool"]
        elif item.get("padding", "valid") == "same":
            side, needed = -(-side // item.get("strides", 1)), 1
        else:
            needed = item["kernel_size"]
            side = (side - item["kernel_size"]) // item.get("strides", 1) + 1
        if side < 1:
            raise ParamsError(
                f"train.model.conv_stack: item {index} ({item}) needs a {needed}x{needed} "
                f"feature map; the layers before it leave less of a {IMAGE_SIDE}x{IMAGE_SIDE} image"
            )


def _check_schedule(train):
    """lr_decay belongs to the exponential schedule, the warm-up to the cosine one."""
    if train["lr_schedule"] == "cosine" and train["lr_decay"] != 1:
        raise ParamsError("train.lr_decay: applies to lr_schedule exponential only; "
                          f"cosine falls to 0 by itself, got {train['lr_decay']!r}")
    if train["lr_schedule"] == "exponential" and train["lr_warmup_epochs"]:
        raise ParamsError("train.lr_warmup_epochs: applies to lr_schedule cosine only, "
                          f"got {train['lr_warmup_epochs']!r}")
    if train["lr_warmup_epochs"] >= train["epochs"]:
        raise ParamsError(f"train.lr_warmup_epochs: must be < train.epochs "
                          f"({train['epochs']}), got {train['lr_warmup_epochs']!r}")


def check_section(params, section):
    """Return params[section] if it matches SCHEMA, else raise ParamsError naming the key."""
    if section not in params:
        raise ParamsError(f"{section}: missing section")
    values = params[section]
    _check(values, SCHEMA[section], section)
    if section == "train":
        _check_model_fits(values["model"]["conv_stack"])
        _check_schedule(values)
    return values


def _read(path):
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except OSError as error:
        raise SystemExit(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SystemExit(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None


def load(section, path=PARAMS_FILE):
    """Read one stage's section of params.yaml; a bad value exits with one line."""
    params = _read(path)
    try:
        return check_section(params, section)
    except ParamsError as error:
        raise SystemExit(f"{path}: {error}") from None


MNIST_SOURCES_SCHEMA = {"mirrors": _list_of(_url), "files": _md5_table}


def load_mnist_sources(path):
    """The fetch stage's mirror list and MD5 table (stages/mnist_sources.yaml), checked like
    params.yaml: a bad value exits with one line naming it."""
    try:
        values = _read(path)
        _check(values, MNIST_SOURCES_SCHEMA, "")
        return values
    except ParamsError as error:
        raise SystemExit(f"{path}: {error}") from None


def load_backend(path=PARAMS_FILE):
    """train.backend alone: evaluate and predict load Keras too, and need no other train key."""
    backend = _read(path).get("train", {}).get("backend")
    if problem := SCHEMA["train"]["backend"](backend):
        raise SystemExit(f"{path}: train.backend: {problem}, got {backend!r}")
    return backend


if __name__ == "__main__":
    REFERENCE_PATH.write_text(reference())
    print(f"params: {REFERENCE_PATH}")
