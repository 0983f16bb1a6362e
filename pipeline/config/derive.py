"""Derived experiment files: a base file with settings changed from the command line.

``make run-all EXP=default SET="training.max_steps=500 seeds=[0]"`` writes
``experiments/default-set-<checksum of SET>.yaml`` with ``python -m pipeline derive`` and runs
every stage on that file as if EXP named it, so that each run still traces to a file: its header
names the base file and each setting. Make names the file; this module applies and checks.

A setting is ``path=value``. The path names a field as validation messages do
(``training.max_steps``, ``tasks[0].distances``); the value is YAML (``500``, ``[0, 1]``,
``adam``, ``null``). White space separates settings outside brackets, braces and quotes, so
``seeds=[0, 1]`` is one setting. A mapping on the path that the base file leaves out is created
(a base file lists only what differs from the defaults); a list item must exist. The result is
validated exactly as any experiment file, by loading the text to be written: a bad setting
stops with one line naming it, and no file is written.

A part of a replication claim (``claims.Part``) is derived the same way, in memory: ``part``
applies the part's settings to the claim file and keeps the claim's checks that concern what the
part runs.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline import config
from pipeline.config.experiment import validated
from pipeline.errors import ConfigError

_NAME = r"[A-Za-z_]\w*"
_PATH = re.compile(rf"{_NAME}(\[\d+\])*(\.{_NAME}(\[\d+\])*)*")


@dataclass(frozen=True)
class Setting:
    text: str  # as given: "tasks[0].distances=[10, 20]"
    field: str  # "tasks[0].distances", as a validation message names it
    path: tuple[str | int, ...]  # ("tasks", 0, "distances")
    value: object  # the value read as YAML: [10, 20]


def split(text: str) -> list[str]:
    """``"a=1 b=[1, 2]"`` -> ``["a=1", "b=[1, 2]"]``: white space separates settings outside
    brackets, braces and quotes (a quote opens a quoted part only where a YAML value can start).
    """
    items, current, depth, quote = [], "", 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"" and (not current or current[-1] in "=[{, "):
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(depth - 1, 0)
        elif ch.isspace() and depth == 0:
            if current:
                items.append(current)
            current = ""
            continue
        current += ch
    if current:
        items.append(current)
    return items


def parse(text: str) -> Setting:
    """One ``path=value``; raises ConfigError, naming it, for a malformed path or value."""
    field, sep, raw = text.partition("=")
    if not sep or not _PATH.fullmatch(field):
        raise ConfigError(
            f"{text}: not a setting; write path=value, the path as in training.max_steps or "
            "tasks[0].distances"
        )
    if not raw.strip():
        raise ConfigError(f"{text}: no value (write null for none)")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{text}: the value is not YAML ({problem})") from None
    return setting(field, value, text)


def setting(field: str, value: object, text: str | None = None) -> Setting:
    """The setting of ``field`` (``tasks[0].distances``) to ``value``, already read; raises
    ConfigError for a malformed path.
    """
    shown = yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("...\n")
    text = text or f"{field}={shown.strip()}"
    if not _PATH.fullmatch(field):
        raise ConfigError(
            f"{text}: not a path; write it as in training.max_steps or tasks[0].distances"
        )
    path = tuple(int(p) if p.isdigit() else p for p in re.findall(r"\w+", field))
    return Setting(text, field, path, value)


def _join(where: str, part: str | int) -> str:
    """``tasks`` and 0 -> ``tasks[0]``; ``tasks[0]`` and ``distances`` -> ``tasks[0].distances``."""
    if isinstance(part, int):
        return f"{where}[{part}]"
    return f"{where}.{part}" if where else part


def _child(node: object, part: str | int, where: str, after: str | int) -> object:
    """``node[part]``, creating a missing mapping when ``after`` is a key; ``where`` names
    ``node``. Raises ValueError saying why the path cannot go on.
    """
    here = _join(where, part)
    if isinstance(part, int):
        if not isinstance(node, list):
            raise ValueError(f"{where} is not a list in the base file")
        if part >= len(node):
            items = f"{len(node)} item" + ("" if len(node) == 1 else "s")
            raise ValueError(f"{where} has {items} in the base file: no {here}")
        return node[part]
    if not isinstance(node, dict):
        raise ValueError(f"{where} is {node!r} in the base file, not a mapping")
    if part not in node:
        if isinstance(after, int):
            raise ValueError(
                f"{here} is not in the base file, so it has no item [{after}]: set it whole"
            )
        node[part] = {}
    return node[part]


def apply(mapping: dict, settings: list[Setting]) -> dict:
    """A copy of ``mapping`` with each setting applied in turn. Raises ConfigError naming the
    setting whose path the mapping cannot hold (an index past a list's end, a key under a
    number), or a path set twice. Unknown keys are left to validation.
    """
    seen = set()
    out = copy.deepcopy(mapping)
    for s in settings:
        if s.field in seen:
            raise ConfigError(f"{s.text}: {s.field} is set twice")
        seen.add(s.field)
        node, where = out, ""
        try:
            for part, after in zip(s.path, s.path[1:], strict=False):
                node = _child(node, part, where, after)
                where = _join(where, part)
            last = s.path[-1]
            _child(node, last, where, "")  # the last part fits: an existing item, or a key
            node[last] = copy.deepcopy(s.value)
        except ValueError as e:
            raise ConfigError(f"{s.text}: {e}") from None
    return out


def render(base: Path, settings: list[Setting], mapping: dict) -> str:
    """The derived file's text: a header naming the base file and each setting, then YAML."""
    shown = "".join(f"#   {' '.join(s.text.split())}\n" for s in settings)
    return (
        f"# Derived from {base} with these settings (python -m pipeline derive):\n{shown}"
        "# make writes it again when the base file changes: edit the base file or the settings.\n"
        + yaml.safe_dump(
            mapping, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100
        )
    )


def _related(field: str, where: str) -> bool:
    """Whether a validation message about ``where`` concerns the setting of ``field``."""
    pairs = ((field, where), (where, field))
    return any(a == b or a.startswith((b + ".", b + "[")) for a, b in pairs)


def _problem(draft: Path, error: ConfigError, settings: list[Setting]) -> str:
    """The validation message of ``draft`` as one line naming the settings it concerns: those
    of the field it is about or that it names (all of them when none is: a check across fields).
    """
    lines = [line.removeprefix(f"{draft}: ") for line in str(error).splitlines()]

    def concerns(s: Setting, line: str) -> bool:
        return _related(s.field, line.partition(": ")[0]) or s.field in line

    named = [s for s in settings if any(concerns(s, line) for line in lines)] or settings
    return f"{' '.join(s.text for s in named)}: {'; '.join(lines)}"


def derive(base: Path, text: str, output: Path) -> config.Experiment:
    """Write ``output``: ``base`` with the settings of ``text`` applied, validated as an
    experiment file named ``output``'s stem. Raises ConfigError, naming the base file and the
    setting at fault, for an invalid base file, setting or result; ``output`` is then untouched.
    """
    config.load(base)  # a fault of the base file is named as such, not as a setting's
    prefix = f"{base} with "
    try:
        settings = [parse(item) for item in split(text)]
        if not settings:
            raise ConfigError("no settings: give path=value, such as training.max_steps=500")
        mapping = apply(yaml.safe_load(base.read_text(encoding="utf-8")), settings)
    except ConfigError as e:
        raise ConfigError(prefix + str(e)) from None
    body = render(base, settings, mapping)
    with tempfile.TemporaryDirectory() as folder:  # the same name: the same experiment
        draft = Path(folder) / output.name
        draft.write_text(body, encoding="utf-8")
        try:
            exp = config.load(draft)
        except ConfigError as e:
            raise ConfigError(prefix + _problem(draft, e, settings)) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, output)  # a reader sees the whole file or none
    return exp


def part(path: Path, name: str) -> config.Experiment:
    """Part ``name`` of the claim in ``path`` (``claims.Part``), as an experiment named
    ``<claim>.<name>``: the claim file with the part's settings applied; its claim block the
    file's, with only the checks and observations of the models it keeps, each at those of its
    distances that the part runs, the part's budget in place of the claim's, and no parts.

    Raises ConfigError naming the file and ``claim.parts.<name>`` for a setting of the claim
    block (a part is judged by the claim's own checks), a setting the file cannot hold, a part
    that keeps none of the claim's checks, or an invalid result.
    """
    claim = config.load(path).claim
    if claim is None or name not in claim.parts:
        raise ConfigError(f"{path}: claim.parts: no part {name!r}")
    where = f"{path}: claim.parts.{name}"
    spec = claim.parts[name]
    try:
        settings = [setting(field, value) for field, value in spec.settings.items()]
        if any(s.path[0] == "claim" for s in settings):
            raise ConfigError(
                "settings: a part keeps its claim's block (its checks are the claim's); say a "
                "smaller budget in budget"
            )
        mapping = apply(yaml.safe_load(path.read_text(encoding="utf-8")), settings)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    block = mapping["claim"]
    models = {m.get("name") for m in mapping.get("models", []) if isinstance(m, dict)}
    tasks = mapping.get("tasks") or [{}]
    distances = tasks[0].get("distances", []) if isinstance(tasks[0], dict) else []
    for kind in ("expect", "observe"):
        block[kind] = _kept(block.get(kind, []), models, distances)
    if not block["expect"]:
        raise ConfigError(
            f"{where}: settings: none of the claim's checks concerns the models and distances "
            "the part runs"
        )
    block.pop("parts")
    if spec.budget is not None:
        block["budget"] = spec.budget
    try:
        return validated(path, f"{path.stem}.{name}", mapping)
    except ConfigError as e:
        lines = (line.removeprefix(f"{path}: ") for line in str(e).splitlines())
        raise ConfigError("\n".join(f"{where}: {line}" for line in lines)) from None


def _kept(entries: list[dict], models: set, distances: list) -> list[dict]:
    """The checks (or observations) of ``models``, each at those of its distances among
    ``distances`` (one without distances: at every distance); those left with none, dropped.
    """
    out = []
    for entry in entries:
        if entry.get("model") not in models:
            continue
        if entry.get("distances") is not None:
            entry = {**entry, "distances": [d for d in entry["distances"] if d in distances]}
            if not entry["distances"]:
                continue
        out.append(entry)
    return out


def parts(path: Path) -> dict[str, config.Experiment]:
    """Every part of the claim in ``path``, by its experiment's name (``<claim>.<part>``)."""
    claim = config.load(path).claim
    found = [part(path, name) for name in (claim.parts if claim else {})]
    return {exp.name: exp for exp in found}
