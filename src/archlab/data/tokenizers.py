"""Tokenizers: character-level (with byte fallback) and byte-level BPE via HF `tokenizers`.

Both share one interface: `encode(text, add_special=False) -> list[int]`, `decode(ids, skip_special=True)`,
`vocab_size`, the special ids `bos_id eos_id pad_id mask_id cls_id sep_id`, `save(path)` (atomic) and
`fingerprint()` (a hash of the saved form, used to key token caches). `decode(encode(s)) == s` for every
UTF-8 string `s` with either class (a loaded third-party tokenizer.json may normalize, e.g. lowercase).
Special tokens are never parsed out of raw text: the string "<bos>" in a corpus encodes as ordinary text.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from archlab.errors import UserError
from archlab.fileio import atomic_write_text

SPECIAL_NAMES = ("pad", "bos", "eos", "mask", "cls", "sep")
SPECIAL_TOKENS = {name: f"<{name}>" for name in SPECIAL_NAMES}

# spellings used by common pretrained tokenizers, tried in order when loading a foreign tokenizer.json
_ALIASES = {
    "pad": ["<pad>", "[PAD]", "<|pad|>", "<|padding|>"],
    "bos": ["<bos>", "<s>", "[BOS]", "<|begin_of_text|>", "<|im_start|>", "<|endoftext|>", "[CLS]"],
    "eos": ["<eos>", "</s>", "[EOS]", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>", "<|endoftext|>", "[SEP]"],
    "mask": ["<mask>", "[MASK]", "<|mask|>"],
    "cls": ["<cls>", "[CLS]", "<s>", "<bos>"],
    "sep": ["<sep>", "[SEP]", "</s>", "<eos>"],
}


class TokenizerError(UserError):
    """A tokenizer file or token id that cannot be used, with the file/id named."""


class _Base:
    """Shared helpers: special-id bookkeeping and id validation."""

    pad_id: int
    bos_id: int
    eos_id: int
    mask_id: int
    cls_id: int
    sep_id: int

    @property
    def vocab_size(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def special_ids(self) -> dict[str, int]:
        """{'pad': id, 'bos': id, ...} for the six special tokens."""
        return {name: getattr(self, f"{name}_id") for name in SPECIAL_NAMES}

    @property
    def all_special_ids(self) -> set[int]:
        """Every id that is a special token (never masked, skipped by decode)."""
        return set(self.special_ids.values())

    def _check_ids(self, ids: Sequence[int]) -> list[int]:
        out = [int(i) for i in ids]
        v = self.vocab_size
        for i in out:
            if not 0 <= i < v:
                raise TokenizerError(f"token id {i} out of range: expected 0 <= id < vocab_size={v}")
        return out

    def encode_batch(self, texts: Iterable[str], add_special: bool = False) -> list[list[int]]:
        """encode() over many texts."""
        return [self.encode(t, add_special=add_special) for t in texts]

    def fingerprint(self) -> str:
        """sha256 of the serialized tokenizer: equal fingerprints encode identically."""
        return hashlib.sha256(self.to_json_str().encode("utf-8")).hexdigest()

    def to_json_str(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as JSON atomically; a folder gets `tokenizer.json` inside it."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        atomic_write_text(path, self.to_json_str())
        return path


class CharTokenizer(_Base):
    """One id per character seen in training text; unseen characters fall back to their UTF-8 bytes.

    Layout: ids 0-5 are the special tokens (pad bos eos mask cls sep), then one id per vocabulary
    character (sorted), then 256 byte tokens <0x00>..<0xFF> (only when byte_fallback is on).
    """

    def __init__(self, chars: Iterable[str], byte_fallback: bool = True) -> None:
        chars = sorted(set(chars))
        bad = [c for c in chars if len(c) != 1]
        if bad:
            raise TokenizerError(f"CharTokenizer vocabulary entries must be single characters, got {bad[:3]!r}")
        self.chars = chars
        self.byte_fallback = byte_fallback
        for i, name in enumerate(SPECIAL_NAMES):
            setattr(self, f"{name}_id", i)
        self.n_special = len(SPECIAL_NAMES)
        self.stoi = {c: self.n_special + i for i, c in enumerate(chars)}
        self.itos = dict(enumerate([SPECIAL_TOKENS[n] for n in SPECIAL_NAMES] + chars))
        self.byte_offset = self.n_special + len(chars)
        self._vocab_size = self.byte_offset + (256 if byte_fallback else 0)

    @classmethod
    def from_text(cls, text: str, byte_fallback: bool = True) -> CharTokenizer:
        """Vocabulary = the distinct characters of `text`."""
        if not text:
            raise TokenizerError("cannot build a character vocabulary from empty text")
        return cls(set(text), byte_fallback=byte_fallback)

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def encode(self, text: str, add_special: bool = False) -> list[int]:
        """Token ids of `text`; add_special wraps them in BOS ... EOS."""
        stoi = self.stoi
        try:
            ids = [stoi[c] for c in text]
        except KeyError:
            ids = []
            for c in text:
                i = stoi.get(c)
                if i is not None:
                    ids.append(i)
                elif self.byte_fallback:
                    ids.extend(self.byte_offset + b for b in c.encode("utf-8", "surrogatepass"))
                else:
                    raise TokenizerError(f"character {c!r} (U+{ord(c):04X}) is not in the vocabulary "
                                         "and byte_fallback is off") from None
        return [self.bos_id, *ids, self.eos_id] if add_special else ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Text of `ids`; runs of byte tokens are decoded as UTF-8 (invalid bytes become U+FFFD)."""
        ids = self._check_ids(ids)
        out: list[str] = []
        pending = bytearray()
        for i in ids:
            if i >= self.byte_offset:
                pending.append(i - self.byte_offset)
                continue
            if pending:
                out.append(pending.decode("utf-8", "replace"))
                pending.clear()
            if i < self.n_special:
                if not skip_special:
                    out.append(self.itos[i])
            else:
                out.append(self.itos[i])
        if pending:
            out.append(pending.decode("utf-8", "replace"))
        return "".join(out)

    def id_to_token(self, i: int) -> str:
        """Readable name of one id."""
        (i,) = self._check_ids([i])
        return self.itos[i] if i < self.byte_offset else f"<0x{i - self.byte_offset:02X}>"

    def to_json_str(self) -> str:
        return json.dumps({"type": "archlab-char", "version": 1, "special_tokens": list(SPECIAL_NAMES),
                           "byte_fallback": self.byte_fallback, "chars": "".join(self.chars)},
                          ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json_dict(cls, data: dict, source: str = "<dict>") -> CharTokenizer:
        """Rebuild from the dict that to_json_str wrote."""
        if data.get("type") != "archlab-char" or not isinstance(data.get("chars"), str):
            raise TokenizerError(f"{source}: not an archlab character tokenizer (expected type 'archlab-char')")
        if list(data.get("special_tokens", SPECIAL_NAMES)) != list(SPECIAL_NAMES):
            raise TokenizerError(f"{source}: special_tokens must be {list(SPECIAL_NAMES)}")
        return cls(data["chars"], byte_fallback=bool(data.get("byte_fallback", True)))


class BPETokenizer(_Base):
    """A Hugging Face `tokenizers` tokenizer: byte-level BPE trained here, or any loaded tokenizer.json."""

    def __init__(self, tokenizer, source: str = "<memory>") -> None:
        from tokenizers import AddedToken

        self.tk = tokenizer
        self.source = source
        # raw text must never be parsed into special tokens, or "<bos>" in a corpus would not round-trip
        self.tk.encode_special_tokens = True
        found: dict[str, int] = {}
        for name in SPECIAL_NAMES:
            for alias in _ALIASES[name]:
                i = self.tk.token_to_id(alias)
                if i is not None:
                    found[name] = i
                    break
        # pretrained vocabularies often lack some roles: reuse a neighbour (GPT-2 pads with <|endoftext|>)
        fallbacks = {"pad": ["eos", "bos"], "bos": ["cls", "eos"], "eos": ["sep", "bos"], "cls": ["bos"],
                     "sep": ["eos"], "mask": []}
        for name in SPECIAL_NAMES:
            if name not in found:
                for other in fallbacks[name]:
                    if other in found:
                        found[name] = found[other]
                        break
        missing = [n for n in SPECIAL_NAMES if n not in found]
        if missing:  # add the missing roles as new special tokens (grows the vocabulary)
            self.tk.add_special_tokens([AddedToken(SPECIAL_TOKENS[n], special=True) for n in missing])
            for n in missing:
                found[n] = self.tk.token_to_id(SPECIAL_TOKENS[n])
        for name, i in found.items():
            setattr(self, f"{name}_id", int(i))
        self._special = {int(i) for i in found.values()} | {
            int(i) for i, tok in self.tk.get_added_tokens_decoder().items() if tok.special}

    @classmethod
    def train(cls, texts: Iterable[str] | str, vocab_size: int, min_frequency: int = 2) -> BPETokenizer:
        """Train byte-level BPE (GPT-2 style, no normalization) with the six special tokens at ids 0-5."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        n_min = len(SPECIAL_NAMES) + 256
        if vocab_size < n_min:
            raise TokenizerError(f"vocab_size={vocab_size} too small for byte-level BPE: need >= {n_min} "
                                 "(6 special tokens + 256 bytes)")
        if isinstance(texts, str):
            texts = [texts]
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tk.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=[SPECIAL_TOKENS[n] for n in SPECIAL_NAMES],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tk.train_from_iterator(_chunks(texts), trainer=trainer)
        return cls(tk, source="<trained>")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> BPETokenizer:
        """Load a Hugging Face tokenizer.json."""
        from tokenizers import Tokenizer

        try:
            tk = Tokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - the Rust library raises a plain Exception (naming no file)
            if type(e) is not Exception:  # MemoryError, RecursionError, ...: not a verdict on the file
                raise
            raise TokenizerError(f"{path}: not a valid Hugging Face tokenizer.json ({e})") from None
        return cls(tk, source=str(path))

    @property
    def vocab_size(self) -> int:
        return self.tk.get_vocab_size(with_added_tokens=True)

    @property
    def all_special_ids(self) -> set[int]:
        return set(self._special)

    def encode(self, text: str, add_special: bool = False) -> list[int]:
        """Token ids of `text`; add_special wraps them in BOS ... EOS."""
        ids = self.tk.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids, self.eos_id] if add_special else ids

    def encode_batch(self, texts: Iterable[str], add_special: bool = False) -> list[list[int]]:
        encs = self.tk.encode_batch(list(texts), add_special_tokens=False)
        if add_special:
            return [[self.bos_id, *e.ids, self.eos_id] for e in encs]
        return [e.ids for e in encs]

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Text of `ids` (special tokens dropped unless skip_special=False)."""
        ids = self._check_ids(ids)
        if skip_special:
            ids = [i for i in ids if i not in self._special]
        return self.tk.decode(ids, skip_special_tokens=False)

    def id_to_token(self, i: int) -> str:
        """The vocabulary string of one id."""
        (i,) = self._check_ids([i])
        return self.tk.id_to_token(i)

    def to_json_str(self) -> str:
        return self.tk.to_str(pretty=True)


def _chunks(texts: Iterable[str], size: int = 1 << 16) -> Iterable[str]:
    """Feed long documents to the trainer in line-aligned pieces (keeps memory bounded)."""
    for t in texts:
        if len(t) <= size:
            yield t
            continue
        start = 0
        while start < len(t):
            end = t.find("\n", start + size)
            end = len(t) if end < 0 else end + 1
            yield t[start:end]
            start = end


Tokenizer = CharTokenizer | BPETokenizer


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer saved by save() (character or BPE) or any Hugging Face tokenizer.json; a folder
    is searched for tokenizer.json."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise TokenizerError(f"{path}: tokenizer file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path}: not a JSON tokenizer file ({e})") from None
    if isinstance(data, dict) and data.get("type") == "archlab-char":
        return CharTokenizer.from_json_dict(data, source=str(path))
    if isinstance(data, dict) and "model" in data:
        return BPETokenizer.from_file(path)
    raise TokenizerError(f"{path}: unrecognised tokenizer format (expected an archlab character tokenizer "
                         "or a Hugging Face tokenizer.json with a 'model' field)")
