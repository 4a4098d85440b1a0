"""The layout stays readable: no module of src/archlab over 400 lines, no function over 60 (DESIGN's limits)."""
import ast
from pathlib import Path

import archlab

SRC = Path(archlab.__file__).parent
MAX_FILE, MAX_FUNCTION = 400, 60


def test_no_file_over_400_lines_and_no_function_over_60():
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(SRC).as_posix()
        if text.count("\n") > MAX_FILE:
            too_long.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION:
                    too_long.append(f"{rel}:{node.lineno} {node.name}: {n} lines")
    assert not too_long, "split these:\n" + "\n".join(too_long)
