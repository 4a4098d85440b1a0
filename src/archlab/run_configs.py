"""The run configs shipped inside the package (archlab/configs/*.yaml, copies of the repository's configs/ kept
equal by a test), found by name from any folder: `archlab train shakespeare_char_llama` and, outside a checkout,
`archlab train configs/shakespeare_char_llama.yaml` read the shipped file."""
from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).parent / "configs"
SUFFIXES = (".yaml", ".yml", ".json")


def shipped() -> dict[str, Path]:
    """{name: path} of every shipped run config, sorted by name."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(SHIPPED_DIR.iterdir()) if p.suffix in SUFFIXES and p.is_file()}


def shipped_path(spec: str | Path) -> Path | None:
    """The shipped config that `spec` names: a bare name ('fashion_mnist'), a file name ('fashion_mnist.yaml') or
    the repository path ('configs/fashion_mnist.yaml'); None for anything else."""
    p = Path(spec)
    if p.parent not in (Path("."), Path("configs")) or (p.suffix and p.suffix not in SUFFIXES):
        return None
    return shipped().get(p.stem if p.suffix else p.name)


def resolve(spec: str | Path) -> Path:
    """`spec` itself when that file exists, else the shipped config it names, else `spec` unchanged (the caller
    reports the missing file)."""
    p = Path(spec)
    if p.exists():
        return p
    return shipped_path(p) or p


def describe(path: Path, width: int = 110) -> str:
    """A config's one-line description: the first sentence of its leading comment (at most `width` characters)."""
    words: list[str] = []
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                text = line.lstrip("#").strip()
                if not line.startswith("#") or "archlab " in text or not text:
                    break
                words.append(text)
                if text.endswith((".", ":")):
                    break
    except OSError:
        return ""
    first = " ".join(words).rstrip(":")
    return first if len(first) <= width else first[:width - 1].rstrip() + "…"


def hint() -> str:
    """' (shipped configs: a, b, ...; `archlab configs` lists them)' for a missing-file error."""
    names = list(shipped())
    return f" (shipped configs, usable by name: {', '.join(names)}; `archlab configs` lists them)" if names else ""
