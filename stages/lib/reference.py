"""The parameter reference (docs/parameters.md) and the JSON Schema that editors check
conf/config.yaml and params.yaml against (conf/params.schema.json), both written from the stages'
`Params` models by `python -m stages.lib.reference`; tests fail when either is stale."""

import importlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from stages.lib.params import read

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("fetch", "preprocess", "ood", "mnist_c", "train", "evaluate", "plot", "report")
DEFAULTS_PATH = ROOT / "conf/config.yaml"
REFERENCE_PATH = ROOT / "docs/parameters.md"
SCHEMA_PATH = ROOT / "conf/params.schema.json"
# Keys of params.yaml that no stage reads: the stamp that conf/'s composition writes (see
# conf/hydra_plugins) and the name of the recipe it was composed from.
UNSTAGED_KEYS = {"written_by": "what wrote this file, and a digest of its values",
                 "recipe": "the recipe params.yaml was composed from (conf/recipe/)"}


def stage_models():
    """(section, Params model) of every stage, in pipeline order."""
    return [(name, importlib.import_module(f"stages.{name}").Params) for name in STAGES]


def json_schema():
    """A JSON Schema of params.yaml (and conf/config.yaml) for editors."""
    class ParamsFile(BaseModel):
        model_config = ConfigDict(extra="forbid", title="params.yaml of mnist-dvc")

    properties, definitions = {}, {}
    for section, model in stage_models():
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        definitions.update(schema.pop("$defs", {}))
        properties[section] = schema
    for key, description in UNSTAGED_KEYS.items():
        properties[key] = {"type": "string", "description": description}
    properties["defaults"] = {"type": "array", "description": "Hydra's defaults list (conf/)"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": ParamsFile.model_config["title"], "type": "object",
            "additionalProperties": False, "required": list(STAGES),
            "properties": properties, "$defs": definitions}


def _allowed(schema, definitions):
    """What a field's JSON Schema allows, in words."""
    if "allowed" in schema:
        return schema["allowed"]
    if "$ref" in schema:
        return _allowed(definitions[schema["$ref"].split("/")[-1]], definitions)
    if "anyOf" in schema:
        return ", or ".join(_allowed(option, definitions) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(sorted(map(str, schema["enum"])))
    if "const" in schema:
        return str(schema["const"])
    kind = schema.get("type")
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        return "a list, each item " + _allowed(schema.get("items", {}), definitions)
    if kind in ("integer", "number"):
        bounds = [f"{sign} {schema[name]}" for name, sign in
                  [("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                   ("exclusiveMaximum", "<")] if name in schema]
        number = "an integer" if kind == "integer" else "a number"
        return f"{number} {' and '.join(bounds)}".strip()
    return kind or "any value"


def _rows(prefix, model, defaults, definitions):
    for key, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _rows(f"{prefix}{key}.", annotation, defaults[key], definitions)
            continue
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        definitions.update(schema.get("$defs", {}))
        default = yaml.safe_dump(defaults[key], default_flow_style=True, width=10**6).strip()
        default = default.removesuffix("\n...").replace("|", "\\|")
        allowed = _allowed(schema["properties"][key], definitions)
        yield f"| `{prefix}{key}` | `{default}` | {allowed} | {field.description} |"


def reference():
    """docs/parameters.md: every key with its default (conf/config.yaml), what it allows and
    what it means, from the stages' models."""
    defaults = read(DEFAULTS_PATH)
    rows, definitions = [], {}
    for section, model in stage_models():
        rows += _rows(f"{section}.", model, defaults[section], definitions)
    return "\n".join([
        "# Parameters",
        "",
        "Every key of `params.yaml`, its default (`conf/config.yaml`, the tutorial recipe), what the "
        "stage's model accepts and what it means. Written by `python -m stages.lib.reference` from "
        "the `Params` model of each `stages/<stage>.py`, with the JSON Schema "
        "`conf/params.schema.json` that editors check the files against; a test fails when "
        "either differs from what the models write. Each stage reads its own section.",
        "",
        "| key | default | allowed | meaning |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


def main():
    REFERENCE_PATH.write_text(reference())
    SCHEMA_PATH.write_text(json.dumps(json_schema(), indent=2) + "\n")
    print(f"params: {REFERENCE_PATH.relative_to(ROOT)}, {SCHEMA_PATH.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
