"""The one list of each stage's code (``pipeline/stages.py``) covers what the stage really runs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import paths, stages

PACKAGE = paths.SOURCE_ROOT / "pipeline"
ENTRIES = {  # the modules each stage's command runs
    "derive": ["pipeline.derive"],
    "data": ["pipeline.data"],
    "train": ["pipeline.sweep", "pipeline.train", "pipeline.ray_executor", "pipeline.preload"],
    "report": ["pipeline.report"],
    "replicate": ["pipeline.replication"],
}


def module_file(name: str) -> Path:
    path = paths.SOURCE_ROOT / Path(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def pipeline_imports(path: Path) -> set[str]:
    """The pipeline modules ``path`` imports, at any depth of its code (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("pipeline") and module_file(name).exists():
                found.add(name)
    return found | {"pipeline"}  # importing a submodule runs the package's __init__


def closure(entries: list[str]) -> set[Path]:
    seen, todo = set(), list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += pipeline_imports(module_file(name))
        if "." in name:  # a subpackage's module runs the subpackage's __init__ too
            todo.append(name.rsplit(".", 1)[0])
    return {module_file(name).relative_to(paths.SOURCE_ROOT) for name in seen}


def listed(stage: str) -> set[Path]:
    out = set()
    for pattern in stages.files(stage):
        out |= {p.relative_to(paths.SOURCE_ROOT) for p in paths.SOURCE_ROOT.glob(pattern)}
    return out


@pytest.mark.parametrize("stage", sorted(ENTRIES))
def test_each_stage_lists_every_module_it_runs(stage):
    needed = closure(ENTRIES[stage])
    assert Path("pipeline/config.py") in needed  # the walk follows imports
    assert needed <= listed(stage), sorted(needed - listed(stage))


def test_the_outcome_code_is_part_of_the_train_stage():
    train = set(stages.STAGE_CODE["train"])
    assert set(stages.OUTCOME_CODE) <= train
    assert "sweep.py" in train and "sweep.py" not in stages.OUTCOME_CODE


def test_make_reads_the_same_lists():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.stages", "train"],
        cwd=paths.SOURCE_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == stages.files("train")
    makefile = (paths.SOURCE_ROOT / "Makefile").read_text()
    assert "$(PYTHON) -m pipeline.stages" in makefile


def test_every_outcome_code_entry_names_files():
    found = stages.outcome_files()
    for name in stages.OUTCOME_CODE:
        assert any(p.match(name) for p in found), name  # a glob that matches nothing hashes nothing
    assert len(found) == len(set(found))
