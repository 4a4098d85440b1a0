"""The experiments package has no import cycle: run functions, sweep, analysis and the claims suite import one way."""
import ast
import subprocess
import sys
from pathlib import Path

import archlab

PKG_DIR = Path(archlab.__file__).parent / "experiments"
MODULES = sorted(p.stem for p in PKG_DIR.glob("*.py") if p.stem != "__init__")


def _imports(path: Path) -> set[str]:
    """The archlab.experiments modules a file imports anywhere (lazy imports in functions too), except under
    `if TYPE_CHECKING:` (annotations only, never executed)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            out.update(n.split(".")[2] for n in names if n.startswith("archlab.experiments.")
                       and n.split(".")[2] in MODULES)
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[2] for a in node.names if a.name.startswith("archlab.experiments.")
                       and a.name.split(".")[2] in MODULES)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return out - {path.stem}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := dfs(n)):
                return found
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := dfs(m)):
            return found
    return None


def test_experiments_import_graph_has_no_cycle():
    graph = {m: _imports(PKG_DIR / f"{m}.py") for m in MODULES}
    assert {"runner", "claims", "analysis", "sweep", "executors"} <= set(graph)
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"
    assert graph["runner"] == set(), "run functions import no other experiments module"
    assert "claims" not in graph["analysis"] | graph["sweep"] | graph["executors"]
    # and the cycle finder finds one when there is one
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_run_functions_register_themselves_and_no_claim_code_by_string():
    from archlab.experiments import runner

    src = (PKG_DIR / "runner.py").read_text(encoding="utf-8")
    assert "experiments.claims" not in src and "claims:" not in src
    assert {"trainer", "toy", "teacher_forcing"} <= set(runner.RUN_FUNCTIONS)
    assert runner.resolve_run_fn("teacher_forcing") is runner.teacher_forcing_run
    assert runner.resolve_run_fn("archlab.experiments.claim_runs:teacher_forcing_curve_run").__name__ == \
        "teacher_forcing_curve_run"


def test_each_experiments_module_imports_alone():
    """Each module imports first, with no other experiments module loaded (a cycle would show up as an ImportError
    of a partly initialised module), in one fresh interpreter whose experiments modules are dropped between tries."""
    code = ("import importlib, sys\n"
            "for m in sys.argv[1:]:\n"
            "    for k in [k for k in sys.modules if k.startswith('archlab.experiments')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module('archlab.experiments.' + m)\n"
            "print('ok', len(sys.argv) - 1)\n")
    out = subprocess.run([sys.executable, "-c", code, *MODULES], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split() == ["ok", str(len(MODULES))], out.stderr[-2000:]
