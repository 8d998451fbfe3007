"""The one way a stage reads params.yaml: its own section, validated by the pydantic model that
the stage declares beside its code (`Params` in stages/<stage>.py).

A user's mistake ends the stage with one line naming the dotted key and the value given, before
any data is read or model built; a typo never falls back to a default. The parameter reference
and the editors' JSON Schema come from the same models (stages/lib/reference.py).
"""

import difflib
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

PARAMS_FILE = Path("params.yaml")


class Section(BaseModel):
    """A section of params.yaml, or a part of one: typed values, nothing unknown, nothing
    coerced (a quoted "8" is not 8, 1 is not true)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# NumPy's legacy seeding, which Keras' set_random_seed calls, takes no seed past 32 bits.
MAX_SEED = 2**32 - 1


def Seed(description):  # noqa: N802 (a field type, named like one)
    return Field(ge=0, le=MAX_SEED, description=description)


def placed_at(error, prefix):
    """A ValidationError of a value validated by itself, its locations moved under `prefix`, as
    the ValidationError of the section that holds the value, so one_line names the whole key."""
    return ValidationError.from_exception_data(error.title, [
        {"type": PydanticCustomError(found["type"], found["msg"], found.get("ctx")),
         "loc": (*prefix, *found["loc"]), "input": found["input"]}
        for found in error.errors(include_url=False)])


class ParamsError(ValueError):
    """A value in params.yaml that a stage cannot use."""


def read(path=PARAMS_FILE):
    """The whole YAML file; an unreadable or malformed one exits with one line."""
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except OSError as error:
        raise SystemExit(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SystemExit(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None


def check(values, section, model):
    """values[section] (the whole of values when section is None) if `model` accepts it, else
    ParamsError naming the dotted key."""
    if section is not None:
        if not isinstance(values, dict) or section not in values:
            raise ParamsError(f"{section}: missing section")
        values = values[section]
    try:
        model.model_validate(values)
    except ValidationError as error:
        # A misspelt key also leaves its right spelling missing: name the misspelling.
        errors = sorted(error.errors(), key=lambda found: found["type"] != "extra_forbidden")
        raise ParamsError(one_line(errors[0], section, values)) from None
    return values


def load(section, model, path=PARAMS_FILE):
    """One stage's section of params.yaml (or, with section None, the whole of another YAML
    file) as plain values, validated; a bad value exits with one line."""
    try:
        return check(read(path), section, model)
    except ParamsError as error:
        raise SystemExit(f"{path}: {error}") from None


def _known_keys():
    """Every key any section declares, for did-you-mean suggestions."""
    keys, pending = set(), [Section]
    while pending:
        model = pending.pop()
        pending += model.__subclasses__()
        keys |= set(model.model_fields)
    return keys


def _choices(expected):
    """pydantic's "'a', 'b' or 'c'" as "a, b, c", sorted."""
    return ", ".join(sorted(re.findall(r"'([^']*)'", expected)))


def _problem(error):
    kind, context = error["type"], error.get("ctx", {})
    bounds = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
              "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}
    if kind in bounds:
        sign, name = bounds[kind]
        bound = context[name]
        return f"must be {sign} {int(bound) if float(bound).is_integer() else bound}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "literal_error":
        return f"must be one of {_choices(context['expected'])}"
    if kind == "union_tag_invalid":
        return f"must be one of {_choices(context['expected_tags'])}"
    if kind == "union_tag_not_found":
        return f"must be a mapping with a {context['discriminator'].strip(chr(39))}"
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    return {
        "int_type": "must be an integer", "float_type": "must be a number",
        "bool_type": "must be true or false", "string_type": "must be a string",
        "dict_type": "must be a mapping", "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping", "list_type": "must be a list",
    }.get(kind, error["msg"][0].lower() + error["msg"][1:])


def one_line(error, section, values):
    """One pydantic error as `dotted.key: problem, got value`; list items read `item N`.
    Parts of pydantic's location that are not in the values (a tagged union's tag) are left out,
    unless the last is a key that some section declares."""
    node, keys, items = values, [section] if section else [], []
    for index, part in enumerate(error["loc"]):
        last = index == len(error["loc"]) - 1
        if isinstance(part, int) and isinstance(node, list):
            items.append(f"item {part}")
        elif isinstance(node, dict) and (part in node or (last and error["type"] == "missing")):
            (items if items else keys).append(part)
        elif last and part in _known_keys():
            # A key the values do not hold: an ensemble member's, which it takes from train.
            (items if items else keys).append(part)
            break
        else:
            continue
        node = node[part] if not (last and error["type"] == "missing") else None
    where = ".".join(keys) + "".join(f": {item}" for item in items)
    if error["type"] == "missing":
        return f"{where}: missing"
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        if key in _known_keys():
            return f"{where}: not allowed here"
        close = difflib.get_close_matches(key, _known_keys(), n=1)
        return f"{where}: unknown key" + (f" (did you mean {close[0]}?)" if close else "")
    problem = _problem(error)
    if error["type"] == "union_tag_invalid":
        # The tag is a key of the mapping: name it, and show the value given, not its str().
        tag = error["ctx"]["discriminator"].strip("'")
        return f"{where}.{tag}: {problem}, got {node[tag]!r}"
    explained = error["type"] == "value_error"
    if explained and isinstance(error["input"], (dict, list)):
        return f"{where}: {problem}"  # the message names the part of it that is wrong
    return f"{where}: {problem}, got {error['input']!r}"
