"""Lists and counts in the docs that mirror the code are checked against the code, so they cannot go stale
silently: the mixer kinds in docs/mixers.md, the preset count of the cost cross-check, and no hand-kept count
of the built-in claims (or "next free number") where the spec files decide it."""
from __future__ import annotations

import re
from pathlib import Path

from archlab import registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _mixer_kinds() -> set[str]:
    return set(registry.names("mixer"))


def _builtin_spec_files() -> list[str]:
    """Names of the built-in claim specs: through builtin_specs() wherever the experiments package keeps it
    (it is being reorganised), else the YAML files in the specs folder."""
    import importlib

    for mod in ("archlab.experiments.spec", "archlab.experiments.spec.schema", "archlab.experiments"):
        try:
            fn = getattr(importlib.import_module(mod), "builtin_specs", None)
        except ImportError:
            continue
        if fn is not None:
            return [s.name for s in fn()]
    files = sorted((ROOT / "src/archlab/experiments/specs").glob("*.yaml"))
    assert files, "no built-in claim specs found"
    return [p.stem for p in files]


def _table_after(text: str, header: str) -> list[list[str]]:
    """Rows (cells) of the Markdown table whose header line starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_mixers_md_table_lists_exactly_the_registered_mixer_kinds():
    text = (DOCS / "mixers.md").read_text(encoding="utf-8")
    documented = [k for row in _table_after(text, "| kind | file |") for k in re.findall(r"`([\w-]+)`", row[0])]
    assert len(documented) == len(set(documented)), f"a kind is listed twice: {documented}"
    assert set(documented) == _mixer_kinds()


def test_mixers_md_preset_sentence_names_every_mixer_kind():
    text = (DOCS / "mixers.md").read_text(encoding="utf-8")
    m = re.search(r"Presets `mixer-<kind>-tiny` for every registered mixer kind \(([^)]*)\)", text)
    assert m, "the sentence listing the mixer-<kind>-tiny presets is gone from docs/mixers.md"
    listed = {k.strip() for k in m.group(1).replace("\n", " ").split(",")}
    assert listed == _mixer_kinds()
    from archlab.models import preset_names

    assert {f"mixer-{k}-tiny" for k in listed} <= set(preset_names())


def test_cost_md_crosscheck_preset_count_is_the_number_of_presets():
    from archlab.models import preset_names

    text = (DOCS / "cost.md").read_text(encoding="utf-8")
    counts = {int(n) for n in re.findall(r"\b(?:All|over) (\d+) presets\b", text)}
    assert counts, "docs/cost.md no longer states how many presets the cross-check covered"
    assert counts == {len(preset_names())}, ("docs/cost.md reports the cross-check over a different number of "
                                            "presets than exist: rerun `archlab cost --crosscheck-all` and update")


def test_no_hand_kept_claim_count_or_next_free_number():
    """The built-in claims are whatever files specs/ holds: the docs say so instead of keeping a count that goes
    stale when a claim is added (a results section may still say how many claims *that run* judged)."""
    n = len(_builtin_spec_files())
    assert n > 0
    claims_intro = (DOCS / "claims.md").read_text(encoding="utf-8").split("\n## ", 1)[0]
    stale = re.findall(r"\b(\d+) (?:built-in )?(?:experiments|claims)\b", claims_intro)
    assert all(int(k) == n for k in stale), f"docs/claims.md's introduction counts {stale} claims, specs/ has {n}"
    howto = (DOCS / "how-to-add-a-claim.md").read_text(encoding="utf-8")
    for num in re.findall(r"specs/(\d+)_\w+\.yaml`? \(the next free number\)", howto):
        assert int(num) == n + 1, f"how-to-add-a-claim says the next free number is {num}; specs/ has {n} files"
