"""The packages' boundaries: what each stage's code is (``pipeline/stages.py``), which package may
import which, no import circle, and a code version that follows what the code does.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import paths, stages

PACKAGE = paths.SOURCE_ROOT / "pipeline"
ENTRIES = {  # the modules each stage's command runs
    "derive": ["pipeline.config.derive"],
    "data": ["pipeline.data"],
    "train": ["pipeline.sweep.phases", "pipeline.sweep.ray_executor", "pipeline.sweep.preload"],
    "report": ["pipeline.report"],
    "replicate": ["pipeline.replication"],
}


def module_file(name: str) -> Path:
    path = paths.SOURCE_ROOT / Path(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def module_name(path: Path) -> str:
    parts = path.relative_to(paths.SOURCE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def pipeline_imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The pipeline modules ``path`` imports, at any depth of its code (lazy imports too), or
    only those its module body runs at import time (``top_level_only``).
    """
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.If) and top_level_only:  # if TYPE_CHECKING: not at run time
            continue
        for name in names:
            if name.startswith("pipeline") and module_file(name).exists():
                found.add(name)
    return found


def runs_on_import(path: Path, top_level_only: bool) -> list[tuple[str, bool]]:
    """(module, whole) for each pipeline module ``path`` imports: ``whole`` where the importer
    may use anything in it, not where a package only holds the submodule imported from it
    (``from pipeline import paths`` runs ``pipeline/__init__.py``'s top level only; ``from
    pipeline import results`` may call the function there).
    """
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, True) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found += (
                    [(sub, True), (node.module, False)]
                    if module_file(sub).exists()
                    else [(node.module, True)]
                )
    return [(n, w) for n, w in found if n.startswith("pipeline") and module_file(n).exists()]


def closure(entries: list[str]) -> set[Path]:
    """Every module the ``entries`` may run: what each imports at any depth, and the packages
    above each. A package reached only as the holder of a module imported from it runs its
    top-level imports (importing ``pipeline.config`` runs ``pipeline/__init__.py``, not the
    functions there; ``runs_on_import``).
    """
    seen: dict[str, bool] = {}  # module -> walked whole (else only its top level)
    todo = [(name, True) for name in entries]
    while todo:
        name, whole = todo.pop()
        if name in seen and (seen[name] or not whole):
            continue
        seen[name] = whole
        todo += runs_on_import(module_file(name), top_level_only=not whole)
        if "." in name:  # a subpackage's module runs the subpackage's __init__ too
            todo.append((name.rsplit(".", 1)[0], False))
    return {module_file(name).relative_to(paths.SOURCE_ROOT) for name in seen}


def listed(stage: str) -> set[Path]:
    out = set()
    for pattern in stages.files(stage):
        out |= {p.relative_to(paths.SOURCE_ROOT) for p in paths.SOURCE_ROOT.glob(pattern)}
    return out


@pytest.mark.parametrize("stage", sorted(ENTRIES))
def test_each_stage_lists_every_module_it_runs(stage):
    needed = closure(ENTRIES[stage])
    assert Path("pipeline/config/experiment.py") in needed  # the walk follows imports
    assert needed <= listed(stage), sorted(needed - listed(stage))


def test_a_package_counts_whole_only_where_something_of_its_own_is_imported(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from pipeline import paths\nfrom pipeline import results\n")
    assert runs_on_import(module, top_level_only=False) == [
        ("pipeline.paths", True), ("pipeline", False), ("pipeline", True)
    ]  # fmt: skip
    reading = Path("pipeline/report/reading.py")
    assert reading in closure(["pipeline"])  # pipeline.results reads through the report
    assert reading not in closure(["pipeline.data"])  # which no data module calls


def test_the_outcome_code_is_part_of_the_train_stage_and_the_sweep_and_tracking_are_not():
    train = set(stages.STAGE_CODE["train"])
    assert set(stages.OUTCOME_CODE) <= train
    for package in ("sweep/", "tracking/"):
        assert package in train and package not in stages.OUTCOME_CODE


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


def test_every_stage_entry_names_files():
    for stage in stages.STAGE_CODE:
        for pattern in stages.files(stage):  # a glob that matches nothing watches nothing
            assert list(paths.SOURCE_ROOT.glob(pattern)), (stage, pattern)
    found = stages.outcome_files()
    assert len(found) == len(set(found))
    assert PACKAGE / "train" / "run.py" in found and PACKAGE / "sweep" / "phases.py" not in found


# ---- the code version follows what the code does ------------------------------------------

SOURCE = '''"""A module."""


def f(x):
    """Twice x."""
    return 2 * x  # doubled
'''


def test_a_comment_a_docstring_or_the_layout_leave_the_fingerprint_as_it_was():
    same = stages.code_fingerprint(SOURCE)
    edited = SOURCE.replace("Twice x.", "Two times x.").replace("# doubled", "# times two")
    assert stages.code_fingerprint(edited) == same
    assert stages.code_fingerprint(SOURCE.replace("2 * x", "2*x") + "\n\n") == same
    assert stages.code_fingerprint('"""Other."""\n' + SOURCE.split("\n", 1)[1]) == same


def test_a_change_to_what_the_code_does_changes_the_fingerprint():
    same = stages.code_fingerprint(SOURCE)
    assert stages.code_fingerprint(SOURCE.replace("2 * x", "3 * x")) != same
    assert stages.code_fingerprint(SOURCE.replace("def f(x)", "def g(x)")) != same


# ---- which package may import which --------------------------------------------------------

# package (or top-level module) -> the pipeline packages it must never import, at any depth
FORBIDDEN = {
    "tasks": ("config.experiment", "config.runs", "data", "models", "train", "sweep", "tracking",
              "report"),
    "models": ("config", "data", "train", "sweep", "tracking", "report"),
    "probe": ("train", "sweep", "tracking", "report"),
    "mechanism": ("train", "sweep", "tracking", "report"),
    "config": ("data", "models", "probe", "mechanism", "train", "sweep", "tracking", "report"),
    "tracking": ("models", "probe", "mechanism", "train", "sweep", "report"),
    "train": ("sweep", "report"),
    "report": ("models", "probe", "mechanism", "train", "sweep", "data"),
    "schema": ("data", "models", "probe", "mechanism", "train", "sweep", "tracking", "report"),
    "status": ("data", "models", "probe", "mechanism", "train", "sweep", "report"),
}  # fmt: skip


def _package_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_what_sits_below_it(package):
    files = sorted(PACKAGE.glob(f"{package}/**/*.py")) or [PACKAGE / f"{package}.py"]
    assert files and all(f.exists() for f in files)
    seen = 0
    for path in files:
        for name in pipeline_imports(path):
            seen += 1
            inner = name.removeprefix("pipeline.")
            for banned in FORBIDDEN[package]:
                assert not (inner == banned or inner.startswith(f"{banned}.")), (path, name)
    # the walk sees this package's imports; the network imports nothing of the pipeline
    assert (seen == 0) == (package == "models")


def test_no_module_imports_itself_through_a_circle():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        graph[module_name(path)] = {
            n for n in pipeline_imports(path, top_level_only=True) if n != module_name(path)
        }
    graph = {
        m: {n if n in graph else n.rsplit(".", 1)[0] for n in deps} for m, deps in graph.items()
    }
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, " -> ".join([*trail, module])
        state[module] = 1
        for dep in graph.get(module, ()):
            if dep != module and not module.startswith(f"{dep}."):  # a package runs its init
                visit(dep, [*trail, module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])
    assert "pipeline.config.experiment" in graph


def test_the_fork_servers_modules_load_without_torch_or_mlflow():
    code = (
        "import sys; import pipeline.sweep.forkserver; "
        "assert 'torch' not in sys.modules and 'mlflow' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=paths.SOURCE_ROOT, check=True)


def test_a_local_sweep_never_imports_the_ray_executor():
    code = (
        "import sys; import pipeline.sweep.phases; "
        "assert 'pipeline.sweep.ray_executor' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=paths.SOURCE_ROOT, check=True)
