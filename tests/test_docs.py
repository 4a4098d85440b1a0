"""The documentation: the MkDocs site builds with --strict, and every relative link in README.md and
docs/*.md points at a file (and heading) that exists."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _outside_code(text: str) -> str:
    """The text without fenced code blocks and inline code spans (links there are not links)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def _anchors(path: Path) -> set[str]:
    """Heading ids as MkDocs' toc extension makes them (Python-Markdown's default slugify)."""
    from markdown.extensions.toc import slugify

    ids = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            ids.add(slugify(m.group(1), "-"))
    return ids


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_mkdocs_build_strict(tmp_path):
    """The site builds from any folder (here: an empty temporary one), with the README snippets found."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(tmp_path / "site")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seed documents" in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "how-to-add-a-claim" / "index.html").is_file()
    # `font: false`: viewing the site fetches nothing from Google Fonts (or any other host)
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis" not in html and "fonts.gstatic" not in html
    assert not re.search(r"<(?:script|link)[^>]+(?:src|href)=\"https?://", html)


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w./-]+\.md)\s*$", nav, flags=re.M))
    assert listed == {p.name for p in DOCS.glob("*.md")}


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(md):
    broken = []
    for target in LINK.findall(_outside_code(md.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{md.name}: " + "; ".join(broken)


def test_no_pointers_outside_the_repository():
    """The project stands alone: no links or paths into sibling folders or design notes."""
    for md in _markdown_files():
        text = md.read_text(encoding="utf-8")
        for bad in ("../shared", "DESIGN.md", "seeds/"):
            assert bad not in text, f"{md.relative_to(ROOT)} mentions {bad!r}"


def test_front_page_and_docs_index_agree_on_the_figures():
    """docs/index.md repeats README's 'At a glance' table; the two must not drift apart."""

    def glance(path: Path, prefix: str) -> list[str]:
        text = path.read_text(encoding="utf-8")
        section = text.split("## At a glance", 1)[1].split("\n## ", 1)[0]
        return [ln.replace(f"]({prefix}", "](") for ln in section.splitlines() if ln.startswith("|")]

    readme, index = glance(ROOT / "README.md", "docs/"), glance(DOCS / "index.md", "")
    assert len(readme) > 5
    assert readme == index


def test_docs_index_includes_readme_sections_that_exist():
    """docs/index.md pulls the README's intro and tour in with pymdownx.snippets; each named section must be
    marked in README.md (a section without markers would silently include nothing)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = re.findall(r'^--8<-- "README\.md:(\w+)"$', (DOCS / "index.md").read_text(encoding="utf-8"), flags=re.M)
    assert {"intro", "tour"} <= set(names)
    for name in names:
        start, end = f"<!-- --8<-- [start:{name}] -->", f"<!-- --8<-- [end:{name}] -->"
        assert readme.count(start) == 1 and readme.count(end) == 1, f"README.md lacks the {name!r} markers"
        assert readme.index(start) < readme.index(end)
    assert readme.index("[start:tour]") < readme.index("## A tour on the command line") < readme.index("[end:tour]")
