"""`archlab configs [PATTERN]`: the run configs shipped with archlab, usable by name from any folder."""
from __future__ import annotations

import sys

from archlab import preset_index, run_configs
from archlab.commands._output import add_listing_args, print_listing, quiet_broken_pipe


def add_parser(sub):
    p = sub.add_parser("configs", help="list the run configs shipped with archlab (train them by name)",
                       description="List the run configs (model + task + training schedule) that ship inside the "
                       "package. Each one trains by name from any folder: archlab train shakespeare_char_llama "
                       "--out runs/char. --show prints one, to copy and edit.")
    add_listing_args(p, "configs", "name", "print one shipped config (YAML)", "name, path and description")
    return p


def rows(pattern: str | None = None) -> list[dict]:
    """{name, family (''), path, description} per shipped config matching `pattern`."""
    found = [{"name": n, "family": "", "path": str(p), "description": run_configs.describe(p)}
             for n, p in run_configs.shipped().items()]
    return [{k: v for k, v in r.items() if k != "family"} for r in preset_index.select(found, pattern)]


def run(args) -> int:
    if args.show:
        path = run_configs.shipped_path(args.show)
        if path is None:
            print(f"archlab configs: error: no shipped config {args.show!r}{run_configs.hint()}", file=sys.stderr)
            return 2
        with quiet_broken_pipe():
            print(path.read_text(encoding="utf-8"), end="")
        return 0
    found = rows(args.pattern)
    width = max((len(r["name"]) for r in found), default=0)
    lines = [f"{r['name']:<{width}}  {r['description']}" for r in found]
    if found:
        first = found[0]["name"]
        lines.append(f"\ntrain one by name from any folder: archlab train {first} --out runs/{first}")
    return print_listing("configs", "shipped config", args.pattern, found, lines, args.json)
