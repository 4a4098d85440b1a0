"""`archlab presets [PATTERN]`: list model presets with their family, parameter count and a one-line description."""
from __future__ import annotations

from archlab import preset_index
from archlab.commands._output import add_listing_args, print_listing


def add_parser(sub):
    p = sub.add_parser("presets", help="list model presets, their parameter counts and what each one is",
                       description="List every registered model preset with its family, parameter count (counted "
                       "on the meta device: nothing is allocated) and a one-line description. The table is stored "
                       "once computed, so listing takes well under a second. Examples: archlab presets llama; "
                       "archlab presets 'mamba-*' --json; archlab presets --show llama-tiny")
    add_listing_args(p, "presets", "name or family", "print one preset's full config as YAML",
                     "the table (name, family, params, description)")
    p.add_argument("--refresh", action="store_true", help="recount every preset instead of using the stored table")
    return p


def table(refresh: bool = False) -> dict:
    """The preset table: stored (archlab.preset_index), else counted now (seconds: imports torch) and cached."""
    fp = preset_index.fingerprint()
    doc = None if refresh else preset_index.load(fp)
    if doc is None:
        from archlab.models.preset_table import preset_table

        doc = preset_table(fp)
        preset_index.save(doc)
    return doc


def run(args) -> int:
    if args.show:
        from archlab.config import dumps
        from archlab.models import preset

        print(dumps(preset(args.show)), end="")
        return 0
    doc = table(args.refresh)
    rows = preset_index.select(doc["presets"], args.pattern)
    lines = preset_index.table_lines(rows)
    aliases = {old: new for old, new in doc.get("aliases", {}).items()
               if preset_index.select([{"name": old, "family": ""}], args.pattern)}
    if aliases:
        lines.append("deprecated names (still accepted, with a warning): "
                     + ", ".join(f"{old} → {new}" for old, new in aliases.items()))
    return print_listing("presets", "preset", args.pattern, rows, lines, args.json)
