"""Listing commands (`presets`, `configs`, `claims --list`) end quietly when their reader stops early
(`archlab presets | head`): no 'BrokenPipeError' traceback, exit status 0."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def quiet_broken_pipe() -> Iterator[None]:
    """Run a block that writes to stdout; if the reader has gone, stop writing and say nothing.

    stdout is flushed inside the block (a piped stdout is block-buffered, so the error would otherwise surface at
    interpreter exit), then pointed at /dev/null so the final flush at exit cannot fail again."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout without a file descriptor (a test's StringIO)
            pass
        finally:
            os.close(devnull)


def print_json(data: Any) -> None:
    """`data` as indented JSON on stdout."""
    print(json.dumps(data, indent=2, ensure_ascii=False))


def print_listing(command: str, noun: str, pattern: str | None, rows: list[dict], lines: list[str],
                  as_json: bool) -> int:
    """A listing command's output: `rows` as JSON or `lines` as text (quiet on a closed pipe); exit 1 with one line
    when the pattern matched nothing."""
    if not rows:
        print(f"archlab {command}: no {noun} matches {pattern!r} (`archlab {command}` lists them all)", file=sys.stderr)
        return 1
    with quiet_broken_pipe():
        if as_json:
            print_json(rows)
        else:
            for line in lines:
                print(line)
    return 0


def add_listing_args(p, noun: str, matches: str, show: str, json_fields: str) -> None:
    """PATTERN, --show NAME and --json for a listing command (`presets`, `configs`)."""
    p.add_argument("pattern", nargs="?", metavar="PATTERN",
                   help=f"only {noun} whose {matches} contains PATTERN (a glob when it has * ? or [)")
    p.add_argument("--show", metavar="NAME", help=show)
    p.add_argument("--json", action="store_true", help=f"print {json_fields} as JSON")
