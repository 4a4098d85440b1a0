"""`archlab ...`: one sub-command per module in archlab/commands (each has add_parser and run)."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

from archlab import __version__
from archlab.errors import UserError, one_line


def _commands():
    import archlab.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"archlab.commands.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archlab",
        description="A laboratory for neural-network architectures: build any classic model from named "
        "parts, train it, sample from it, count its cost and test the design claims of the seeds.",
    )
    parser.add_argument("--version", action="version", version=f"archlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def _out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text


def _path_error(e: BaseException) -> bool:
    """An OS error about a path the user gave (missing, a folder, not permitted): the user's to fix."""
    return isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)) and bool(
        getattr(e, "filename", None) or isinstance(e, UserError))


def report_bug(command: str, error: BaseException) -> None:
    """Any exception that is not a user mistake: its traceback, then one line saying what to report."""
    traceback.print_exception(error, file=sys.stderr)
    print(f"archlab {command}: this is a bug in archlab (not a mistake of yours): {type(error).__name__}: "
          f"{one_line(error)[:200]}. Please report it with the archlab version ({__version__}), the full command "
          "line and the traceback above.", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the sub-command's usage and name, not the top-level parser's (`archlab train: error: ...`)
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every exception is sorted: a user mistake, out of memory, or a bug
        if isinstance(e, UserError) or _path_error(e):  # user mistakes: one clear line, no traceback
            print(f"archlab {args.command}: error: {one_line(e)}", file=sys.stderr)
        elif isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and _out_of_memory(e)):
            # the allocator gave up (the preflight estimate is a lower bound)
            print(f"archlab {args.command}: error: out of memory ({one_line(e)[:200] or 'MemoryError'}); use a "
                  "smaller model or batch (model.d_model, model.n_layers, train.batch_size)", file=sys.stderr)
        else:
            report_bug(args.command, e)
            return 1
        return 2


if __name__ == "__main__":
    sys.exit(main())
