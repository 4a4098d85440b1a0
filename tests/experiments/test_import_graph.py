"""archlab.experiments is layered: spec → runs → sweep → judge → engine → suite → report, each subpackage importing
only the layers below it (anywhere in the file, lazy imports included); built-in run functions are registered by
name, never referenced as 'module:function' strings."""
import ast
import subprocess
import sys
from pathlib import Path

import archlab

PKG_DIR = Path(archlab.__file__).parent / "experiments"
# what each part of archlab.experiments may import from the others (the dependency direction)
ALLOWED = {
    "spec": set(),
    "runs": set(),
    "sweep": {"spec", "runs"},
    "judge": {"spec", "sweep"},
    "engine": {"spec", "runs", "sweep", "judge"},
    "suite": {"spec", "sweep", "judge", "engine"},
    "report": {"spec", "runs", "judge", "suite"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(PKG_DIR).parts
    return rel[0] if len(rel) > 1 else Path(rel[0]).stem


def _imported_parts(path: Path) -> set[str]:
    """The parts of archlab.experiments a file imports anywhere (except under `if TYPE_CHECKING:`)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out.update(n.split(".")[2] for n in names if n.startswith("archlab.experiments.") and len(n.split(".")) > 2)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return out


def test_experiments_parts_import_only_the_layers_below():
    files = [p for p in PKG_DIR.rglob("*.py") if p.name != "__init__.py" or p.parent != PKG_DIR]
    assert {_part(p) for p in files} == set(ALLOWED), "a new part of archlab.experiments needs a place in ALLOWED"
    for p in files:
        part = _part(p)
        wrong = _imported_parts(p) - ALLOWED[part] - {part}
        assert not wrong, f"{p.relative_to(PKG_DIR)} ({part}) imports {sorted(wrong)}: not below it"


def test_run_functions_register_themselves_and_no_builtin_is_named_by_path():
    from archlab.experiments import runs
    from archlab.experiments.spec import builtin_specs, calibration_specs

    assert {"trainer", "toy", "teacher_forcing", "teacher_forcing_curve", "train_split", "step_throughput",
            "decode_throughput"} <= \
        set(runs.RUN_FUNCTIONS)
    assert runs.resolve_run_fn("teacher_forcing").__name__ == "teacher_forcing_run"
    for spec in [s for s in builtin_specs() + calibration_specs() if s.kind == "train"]:
        assert spec.runner in runs.RUN_FUNCTIONS, f"{spec.name}: runner {spec.runner!r} is not a registered name"
    # a user's own spec may still name any importable function by path
    assert runs.resolve_run_fn("archlab.experiments.runs.claim_runs:teacher_forcing_curve_run") is \
        runs.RUN_FUNCTIONS["teacher_forcing_curve"]


def test_each_experiments_module_imports_alone():
    """Each module imports first, with no other experiments module loaded (a cycle would show up as an ImportError
    of a partly initialised module), in one fresh interpreter whose experiments modules are dropped between tries."""
    mods = sorted(".".join(p.relative_to(PKG_DIR).with_suffix("").parts).removesuffix(".__init__")
                  for p in PKG_DIR.rglob("*.py") if p.parent != PKG_DIR or p.name != "__init__.py")
    code = ("import importlib, sys\n"
            "for m in sys.argv[1:]:\n"
            "    for k in [k for k in sys.modules if k.startswith('archlab.experiments')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module('archlab.experiments.' + m)\n"
            "print('ok', len(sys.argv) - 1)\n")
    out = subprocess.run([sys.executable, "-c", code, *mods], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split() == ["ok", str(len(mods))], out.stderr[-2000:]
