"""The experiment file described for editors and readers, both from the pydantic models that
validate it (``config.Experiment`` and the sections it holds), so neither can drift from them:

- ``schema()``: its JSON Schema, which an editor reads to flag a typo as it is typed
  (``python -m pipeline schema > docs/experiment.schema.json``);
- ``reference()``: the configuration reference page, every field with its type, default, bounds
  and description (``python -m pipeline schema --markdown > docs/configuration.md``).

Both are committed under ``docs/``; a test regenerates them and fails when the copies are stale.
"""

from __future__ import annotations

import json

from pipeline.config import Experiment

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILE = "docs/experiment.schema.json"
REFERENCE_FILE = "docs/configuration.md"
COMMANDS = {
    SCHEMA_FILE: f"python -m pipeline schema > {SCHEMA_FILE}",
    REFERENCE_FILE: f"python -m pipeline schema --markdown > {REFERENCE_FILE}",
}


# pydantic writes the bounds of a number it validates in two steps (``bounds.Number``: YAML's
# text numbers first) under its own names, which JSON Schema ignores: renamed to JSON Schema's
KEYWORDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of an experiment file. ``name`` is left out: the file's
    stem names the experiment, and a file that sets it is refused.
    """
    generated = _keywords(Experiment.model_json_schema())
    generated["properties"].pop("name")
    generated["required"].remove("name")
    return {"$schema": DRAFT, **generated, "title": "Experiment file"}


def _keywords(node: object) -> object:
    """``node`` with pydantic's bound names as JSON Schema's, and each tagged union as a choice
    by its tag (``_by_tag``), at every depth.
    """
    if isinstance(node, list):
        return [_keywords(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "discriminator" in node:
        node = _by_tag(node)
    numeric = node.get("type") in ("number", "integer")
    return {(KEYWORDS.get(k, k) if numeric else k): _keywords(v) for k, v in node.items()}


def _by_tag(node: dict) -> dict:
    """A union told apart by a tag (a task by its ``task``) as ``if tag is x then x's section``:
    pydantic's ``oneOf`` fails a task with one bad field as a whole ("not valid under any of the
    given schemas"), where this names the field, and an unknown tag as one.
    """
    tag, mapping = node["discriminator"]["propertyName"], node["discriminator"]["mapping"]
    value = {ref: value for value, ref in mapping.items()}
    refs = [choice["$ref"] for choice in node["oneOf"]]  # the registry's order
    return {
        "type": "object",
        "required": [tag],
        "properties": {tag: {"enum": [value[ref] for ref in refs]}},
        "allOf": [
            {"if": {"properties": {tag: {"const": value[ref]}}}, "then": {"$ref": ref}}
            for ref in refs
        ],
    }


def schema_text() -> str:
    """``schema()`` as the committed file holds it."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


# ---- the reference page --------------------------------------------------------------------

INTRO = f"""\
# Configuration reference

Every setting of an experiment file, section by section: its type, its default, its bounds and
what it does. Generated from the pydantic models that validate the files (`pipeline/config/`,
each task's section in `pipeline/tasks/`): edit the models, not this page, and regenerate it
with

```sh
.venv/bin/{COMMANDS[REFERENCE_FILE]}
```

[experiments.md](experiments.md) explains the tasks, the model variants and tuning with
examples; the checks across fields (a batch larger than the training split, tuning seeds that
are also evaluation seeds, data that would not fit in memory) are under its "Validation".

The same models give the JSON Schema [`experiment.schema.json`](experiment.schema.json), with
which an editor flags an unknown key, a wrong type or a value out of bounds as you type
(regenerate it with `.venv/bin/{COMMANDS[SCHEMA_FILE]}`). In VS
Code, with Red Hat's YAML extension, add to `settings.json`:

```json
"yaml.schemas": {{"./docs/experiment.schema.json": ["experiments/**/*.yaml"]}}
```

or name the schema in the first line of one file:
`# yaml-language-server: $schema=../docs/experiment.schema.json`. Editors read YAML 1.2, where
`2e3` is a number; the pipeline reads YAML 1.1, where it is text (write `2000` or `2.0e+3`).
"""

WORDS = {"integer": "integer", "number": "number", "string": "text", "boolean": "true or false",
         "null": "null"}  # fmt: skip
BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))


def reference() -> str:
    """The configuration reference page, in Markdown: one section per part of the file, in the
    order the file's fields reach them, each a table of its fields.
    """
    root = schema()
    defs = root["$defs"]
    sections = [("The experiment file", root, "experiment")]
    queue, seen = _refs(root, defs), set()
    while queue:
        path, name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        task = _task_name(defs, name)
        title = f"`{path}`: {task}" if task else f"`{path}`"
        sections.append((title, defs[name], name.lower()))
        queue += [(f"{path}.{sub}", ref) for sub, ref in _refs(defs[name], defs)]
    return INTRO + "".join(_section(*s, defs) for s in sections)


def _refs(node: dict, defs: dict) -> list[tuple[str, str]]:
    """(field path, definition name) of each section a node's fields hold, in field order:
    ``("tasks[]", "RecallConfig")``, ``("training", "TrainingConfig")``.
    """
    return [(f"{field}[]" if inside_list else field, ref)
            for field, spec in node.get("properties", {}).items()
            for ref, inside_list in _ref_names(spec)]  # fmt: skip


def _ref_names(spec: dict, inside_list: bool = False) -> list[tuple[str, bool]]:
    if "$ref" in spec:
        return [(spec["$ref"].rsplit("/", 1)[1], inside_list)]
    found = []
    for alternative in _alternatives(spec):
        found += _ref_names(alternative, inside_list)
    if "items" in spec:
        found += _ref_names(spec["items"], True)
    named = [spec.get("additionalProperties"), *spec.get("patternProperties", {}).values()]
    for value in named:  # a mapping of named sections: claim.parts
        if isinstance(value, dict):
            found += _ref_names(value, inside_list)
    return found


def _task_name(defs: dict, definition: str) -> str | None:
    """``recall`` for the task section ``RecallConfig``; None for any other section."""
    return defs[definition].get("properties", {}).get("task", {}).get("const")


def _section(title: str, node: dict, anchor: str, defs: dict) -> str:
    lines = [f'\n<a id="{anchor}"></a>\n\n## {title}\n']
    if node.get("description"):
        lines.append(f"{node['description']}\n")
    lines += [
        "| field | type | default | bounds | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    required = set(node.get("required", []))
    for field, spec in node["properties"].items():
        default = "required" if field in required else _default(spec.get("default"))
        cells = [
            f"`{field}`",
            _type(spec, defs),
            default,
            _bounds(spec),
            spec.get("description", ""),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _type(spec: dict, defs: dict) -> str:
    """``list of [recall](#recallconfig) or ...``: a field's type in words, sections linked."""
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[1]
        return f"[{_task_name(defs, name) or name}](#{name.lower()})"
    if "const" in spec:
        return f"`{spec['const']}`"
    if "enum" in spec:
        return " or ".join(f"`{v}`" for v in spec["enum"])
    alternatives = _alternatives(spec)
    if alternatives:
        return " or ".join(_type(a, defs) for a in alternatives)
    kind = spec.get("type")
    if kind == "array":
        items = spec.get("items") or {}
        return f"list of {_type(items, defs)}" if items else "list"
    if kind == "object":
        keys = spec.get("propertyNames", {}).get("enum")
        values = spec.get("additionalProperties")
        if not isinstance(values, dict):  # True: any value; or the values are named by pattern
            values = next(iter(spec.get("patternProperties", {}).values()), None)
        key_text = " or ".join(f"`{k}`" for k in keys) if keys else "name"
        return f"mapping of {key_text} to {_type(values, defs)}" if values else "mapping"
    return WORDS.get(kind, "any")


def _alternatives(spec: dict) -> list[dict]:
    """What a field may be, where it may be one of several things (``_by_tag``'s choices too)."""
    tagged = [choice["then"] for choice in spec.get("allOf", []) if "then" in choice]
    return spec.get("anyOf", []) + spec.get("oneOf", []) + tagged


def _bounds(spec: dict) -> str:
    """``≥ 1, ≤ 4096``: a field's bounds, from it and from what its alternatives allow."""
    parts = []
    for node in [spec, *spec.get("anyOf", []), spec.get("items", {})]:
        parts += [f"{sign} {_number(node[key])}" for key, sign in BOUNDS if key in node]
    for node in [spec, *spec.get("anyOf", [])]:
        for key in ("minItems", "minLength", "minProperties"):
            if key in node:
                parts.append("not empty" if node[key] == 1 else f"at least {node[key]}")
        if "maxLength" in node:
            parts.append(f"at most {node['maxLength']} characters")
    for node in [spec, *spec.get("anyOf", [])]:
        if "pattern" in node:
            parts.append(f"matches `{node['pattern']}`")
    additional = spec.get("additionalProperties")
    additional = additional if isinstance(additional, dict) else {}  # True: any value
    parts += [
        f"each {sign} {_number(additional[key])}" for key, sign in BOUNDS if key in additional
    ]
    return ", ".join(dict.fromkeys(parts))


def _number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _default(value: object) -> str:
    if isinstance(value, dict):
        return "each field's default" if value else "`{}`"
    return f"`{json.dumps(value)}`"
