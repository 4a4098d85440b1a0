"""The preset table that `archlab presets` prints (name, family, parameters, a one-line description), read without
importing torch.

Parameter counts come from building every preset on the meta device (archlab.models.preset_table), which takes
seconds; the table is stored once computed. The package ships it (preset_index.json) together with a fingerprint of
the model sources it was computed from; while those sources are unchanged the shipped table is used as is. After
an edit to archlab/models or archlab/nn the table is recomputed once and cached per fingerprint in the user's
cache folder ($ARCHLAB_CACHE_DIR, else $XDG_CACHE_HOME/archlab, else ~/.cache/archlab).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).parent
INDEX_FILE = PACKAGE / "preset_index.json"
# what a preset's config or parameter count can depend on
SOURCES = ("models", "nn", "config.py", "dotted.py", "registry.py")


def fingerprint(root: Path = PACKAGE) -> str:
    """sha256 over the model sources (paths and contents, in a fixed order)."""
    h = hashlib.sha256()
    for src in SOURCES:
        p = root / src
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(f.relative_to(root).as_posix().encode())
            h.update(b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()


def cache_dir() -> Path:
    """Where a recomputed table is kept."""
    if os.environ.get("ARCHLAB_CACHE_DIR"):
        return Path(os.environ["ARCHLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "archlab"


def cache_file(fp: str) -> Path:
    return cache_dir() / f"presets-{fp[:16]}.json"


def _read(path: Path, fp: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("fingerprint") == fp and isinstance(doc.get("presets"), list) \
        else None


def load(fp: str | None = None) -> dict[str, Any] | None:
    """The table for the current sources ({'fingerprint', 'presets': [row], 'aliases'}), or None when it must be
    recomputed (archlab.models.preset_table.preset_table, then `save`)."""
    fp = fp or fingerprint()
    return _read(INDEX_FILE, fp) or _read(cache_file(fp), fp)


def document(rows: list[dict[str, Any]], aliases: dict[str, str], fp: str) -> dict[str, Any]:
    return {"fingerprint": fp, "presets": rows, "aliases": aliases}


def save(doc: dict[str, Any]) -> Path | None:
    """Cache a recomputed table (None when the cache folder is not writable: the next call recomputes)."""
    path = cache_file(doc["fingerprint"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        return None
    return path


def write_shipped(doc: dict[str, Any]) -> Path:
    """Write the table the package ships (scripts/update_preset_index.py)."""
    INDEX_FILE.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return INDEX_FILE


def select(rows: list[dict[str, Any]], pattern: str | None) -> list[dict[str, Any]]:
    """Rows whose name or family matches: a glob when the pattern has * ? or [, else a substring (any case)."""
    if not pattern:
        return list(rows)
    pat = pattern.lower()
    glob = any(c in pat for c in "*?[")

    def hit(text: str) -> bool:
        text = text.lower()
        return fnmatch.fnmatchcase(text, pat) if glob else pat in text

    return [r for r in rows if hit(r["name"]) or hit(r["family"])]


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The text table: name, family, parameters, description (names and families padded to the longest)."""
    wn = max([len("preset")] + [len(r["name"]) for r in rows])
    wf = max([len("family")] + [len(r["family"]) for r in rows])
    out = [f"{'preset':<{wn}}  {'family':<{wf}}  {'parameters':>15}  description"]
    out += [f"{r['name']:<{wn}}  {r['family']:<{wf}}  {r['params']:>15,}  {r['description']}" for r in rows]
    return out
