"""Synthetic recall tasks that tell sequence mixers apart (seed 001; Zoology, Arora et al. 2023).

Every generator is deterministic in its `generator` (a torch.Generator or an int seed) and returns
{"input_ids": (n, T) long, "targets": (n, T) long}: targets[:, t] is the token the model should
predict after reading input_ids[:, :t+1], and −100 wherever the answer is not determined by the
input (random filler, the keys themselves, ...). Accuracy is measured only where targets ≠ −100.

Token layout shared by all tasks: 0 = PAD / noise / blank, 1 = SEP, 2 = TRIGGER, 3 = reserved;
content tokens are 4 … vocab_size−1.
"""
from __future__ import annotations

import torch

from archlab.errors import ConfigError

PAD, SEP, TRIGGER = 0, 1, 2
FIRST = 4  # first content token
IGNORE = -100


def _gen(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    g = torch.Generator()
    g.manual_seed(0 if generator is None else int(generator))
    return g


def _sample_distinct(n: int, population: int, k: int, g: torch.Generator) -> torch.Tensor:
    """(n, k) indices in [0, population), distinct within each row (random permutation prefix)."""
    if k > population:
        raise ConfigError(f"cannot draw {k} distinct items from {population}")
    return torch.rand(n, population, generator=g).argsort(dim=-1)[:, :k]


def _check(name: str, vocab_size: int, need: int) -> None:
    if vocab_size < need:
        raise ConfigError(f"{name} needs vocab_size >= {need}, got {vocab_size}")


def _out(seq: torch.Tensor, targets: torch.Tensor) -> dict:
    return {"input_ids": seq.long(), "targets": targets.long()}


def copy_task(n: int, seq_len: int, vocab_size: int, generator=None) -> dict:
    """x_1 … x_L SEP x_1 … x_L: after SEP, reproduce the whole prefix (L = seq_len // 2)."""
    _check("copy", vocab_size, FIRST + 2)
    g = _gen(generator)
    L = seq_len // 2
    x = torch.randint(FIRST, vocab_size, (n, L), generator=g)
    full = torch.cat([x, torch.full((n, 1), SEP), x], dim=1)  # (n, 2L+1)
    inp, tgt = full[:, :-1], full[:, 1:].clone()
    tgt[:, :L] = IGNORE  # predicting x_{t+1} from x_≤t is a guess
    pad = seq_len - 2 * L
    if pad:
        inp = torch.cat([torch.full((n, pad), PAD), inp], dim=1)
        tgt = torch.cat([torch.full((n, pad), IGNORE), tgt], dim=1)
    return _out(inp, tgt)


def selective_copy(n: int, seq_len: int, vocab_size: int, n_tokens: int = 8, generator=None) -> dict:
    """Mamba §4.1: n_tokens content tokens scattered among blanks, then SEP: emit them in order."""
    _check("selective_copy", vocab_size, FIRST + 2)
    g = _gen(generator)
    R = seq_len - n_tokens  # the scattered region
    if R < n_tokens:
        raise ConfigError(f"selective_copy: seq_len={seq_len} too short for n_tokens={n_tokens}")
    data = torch.randint(FIRST, vocab_size, (n, n_tokens), generator=g)
    where = _sample_distinct(n, R, n_tokens, g).sort(dim=-1).values
    region = torch.full((n, R), PAD).scatter(1, where, data)
    full = torch.cat([region, torch.full((n, 1), SEP), data], dim=1)  # (n, T+1)
    inp, tgt = full[:, :-1], full[:, 1:].clone()
    tgt[:, :R] = IGNORE  # only the answers read after SEP (positions R … T−1) count
    return _out(inp, tgt)


def mqar(n: int, seq_len: int, vocab_size: int, n_pairs: int = 8, generator=None) -> dict:
    """Multi-query associative recall (Zoology): k_1 v_1 … k_P v_P, then each key again among blanks → its value."""
    g = _gen(generator)
    n_keys = (vocab_size - FIRST) // 2
    _check("mqar", vocab_size, FIRST + 2 * n_pairs)
    Q = seq_len - 2 * n_pairs  # the query region
    if Q < n_pairs:
        raise ConfigError(f"mqar: seq_len={seq_len} too short for n_pairs={n_pairs} (need >= {3 * n_pairs})")
    keys = FIRST + _sample_distinct(n, n_keys, n_pairs, g)  # distinct keys per row
    values = FIRST + n_keys + torch.randint(0, vocab_size - FIRST - n_keys, (n, n_pairs), generator=g)
    context = torch.stack([keys, values], dim=2).reshape(n, 2 * n_pairs)
    order = torch.rand(n, n_pairs, generator=g).argsort(dim=-1)  # which key is asked at each query
    where = _sample_distinct(n, Q, n_pairs, g).sort(dim=-1).values  # query positions in the region
    region = torch.full((n, Q), PAD).scatter(1, where, keys.gather(1, order))
    region_tgt = torch.full((n, Q), IGNORE).scatter(1, where, values.gather(1, order))
    inp = torch.cat([context, region], dim=1)
    tgt = torch.cat([torch.full((n, 2 * n_pairs), IGNORE), region_tgt], dim=1)
    return _out(inp, tgt)


def associative_recall(n: int, seq_len: int, vocab_size: int, n_pairs: int | None = None, generator=None) -> dict:
    """Single-query associative recall: k_1 v_1 … k_P v_P q → v(q), with q the last token."""
    g = _gen(generator)
    P = n_pairs or (seq_len - 1) // 2
    if 2 * P + 1 > seq_len:
        raise ConfigError(f"associative_recall: seq_len={seq_len} too short for n_pairs={P}")
    n_keys = (vocab_size - FIRST) // 2
    _check("associative_recall", vocab_size, FIRST + 2 * P)
    keys = FIRST + _sample_distinct(n, n_keys, P, g)
    values = FIRST + n_keys + torch.randint(0, vocab_size - FIRST - n_keys, (n, P), generator=g)
    which = torch.randint(0, P, (n, 1), generator=g)
    body = torch.cat([torch.stack([keys, values], dim=2).reshape(n, 2 * P), keys.gather(1, which)], dim=1)
    pad = seq_len - body.shape[1]
    inp = torch.cat([torch.full((n, pad), PAD), body], dim=1)
    tgt = torch.full((n, seq_len), IGNORE)
    tgt[:, -1] = values.gather(1, which)[:, 0]
    return _out(inp, tgt)


def induction_heads(n: int, seq_len: int, vocab_size: int, generator=None) -> dict:
    """Random tokens with TRIGGER X somewhere; the sequence ends in TRIGGER: predict X (Olsson et al. 2022)."""
    _check("induction_heads", vocab_size, FIRST + 2)
    g = _gen(generator)
    inp = torch.randint(FIRST, vocab_size, (n, seq_len), generator=g)
    p = torch.randint(0, seq_len - 2, (n, 1), generator=g)  # TRIGGER at p, X at p+1 <= T-2
    inp.scatter_(1, p, TRIGGER)
    inp[:, -1] = TRIGGER
    tgt = torch.full((n, seq_len), IGNORE)
    tgt[:, -1] = inp.gather(1, p + 1)[:, 0]
    return _out(inp, tgt)


# seed 001: "Check the program log and find out whether it ran please. Check the battery log and find
# out whether it ran down please." — the word after "ran" is fixed by the subject, far back.
LOG_WORDS = ("check", "the", "log", "and", "find", "out", "whether", "it", "ran", ".")
LOG_SUBJECTS = ("program", "battery", "engine", "printer", "server", "backup", "sensor", "pump")
LOG_ANSWERS = ("please", "down", "hot", "dry", "late", "slow", "fast", "out2")


def program_log_vocab() -> list[str]:
    """Names of tokens FIRST … of the program-log task (fillers follow as 'w<i>')."""
    return list(LOG_WORDS + LOG_SUBJECTS + LOG_ANSWERS)


def program_log(n: int, seq_len: int, vocab_size: int, generator=None) -> dict:
    """'check the S log' + filler + 'and find out whether it ran' → answer(S): a dependency seq_len−10 tokens back."""
    words = program_log_vocab()
    n_fill = vocab_size - FIRST - len(words)
    if n_fill < 2:
        raise ConfigError(f"program_log needs vocab_size >= {FIRST + len(words) + 2}, got {vocab_size}")
    g = _gen(generator)
    tok = {w: FIRST + i for i, w in enumerate(words)}
    head_len, tail = 4, ["and", "find", "out", "whether", "it", "ran"]
    gap = seq_len - head_len - len(tail)
    if gap < 0:
        raise ConfigError(f"program_log: seq_len={seq_len} is shorter than the {head_len + len(tail)}-word frame")
    s = torch.randint(0, len(LOG_SUBJECTS), (n,), generator=g)
    subj = torch.tensor([tok[w] for w in LOG_SUBJECTS])[s]
    ans = torch.tensor([tok[w] for w in LOG_ANSWERS])[s]
    filler = FIRST + len(words) + torch.randint(0, n_fill, (n, gap), generator=g)
    head = torch.stack([torch.full((n,), tok["check"]), torch.full((n,), tok["the"]), subj,
                        torch.full((n,), tok["log"])], dim=1)
    inp = torch.cat([head, filler, torch.tensor([tok[w] for w in tail]).expand(n, -1)], dim=1)
    tgt = torch.full((n, seq_len), IGNORE)
    tgt[:, -1] = ans
    return _out(inp, tgt)


def kth_order(n: int, seq_len: int, vocab_size: int, k: int = 3, order_sensitive: bool = False,
              n_values: int = 16, offsets: tuple[int, ...] | None = None, generator=None) -> dict:
    """Seed 001's higher-order patterns: the answer at the final SEP is a function of k tokens together.

    The k selected tokens are either marked (each follows a TRIGGER, anywhere in the sequence: the model must
    find them by content) or sit at fixed `offsets` back from SEP (a positional pattern, "not necessarily
    consecutive"). Values are v ∈ [0, n_values); the answer is (v_1 + … + v_k) mod n_values — no single token
    and no pair tells it (a k-th order interaction) — or, with `order_sensitive`, (Σ_j (j+1)·v_j) mod n_values
    over the tokens in sequence order, so the same multiset in another order has another answer."""
    if k < 1:
        raise ConfigError(f"kth_order: k={k} must be >= 1")
    if n_values < 2:
        raise ConfigError(f"kth_order: n_values={n_values} must be >= 2")
    _check("kth_order", vocab_size, FIRST + n_values)
    g = _gen(generator)
    body = seq_len - 1  # the last position holds SEP and carries the answer
    vals = torch.randint(0, n_values, (n, body), generator=g)
    inp = FIRST + vals
    if offsets is not None:
        offsets = tuple(int(o) for o in offsets)
        if len(offsets) != k or len(set(offsets)) != k or not all(1 <= o <= body for o in offsets):
            raise ConfigError(f"kth_order: offsets={offsets} must be {k} distinct integers in [1, {body}]")
        where = torch.tensor(sorted(body - o for o in offsets)).expand(n, k)
    else:
        if 2 * k > body:
            raise ConfigError(f"kth_order: seq_len={seq_len} too short for k={k} marked tokens (need >= {2 * k + 1})")
        slots = _sample_distinct(n, body // 2, k, g).sort(dim=-1).values  # one marked pair per 2-token slot
        where = 2 * slots + 1
        inp.scatter_(1, where - 1, TRIGGER)
    picked = vals.gather(1, where)  # (n, k) in sequence order
    weights = torch.arange(1, k + 1) if order_sensitive else torch.ones(k, dtype=torch.long)
    answer = (picked * weights).sum(-1) % n_values
    inp = torch.cat([inp, torch.full((n, 1), SEP)], dim=1)
    tgt = torch.full((n, seq_len), IGNORE)
    tgt[:, -1] = FIRST + answer
    return _out(inp, tgt)


GENERATORS = {
    "copy": copy_task,
    "selective_copy": selective_copy,
    "mqar": mqar,
    "associative_recall": associative_recall,
    "induction_heads": induction_heads,
    "program_log": program_log,
    "kth_order": kth_order,
}


def generate(name: str, n: int, seq_len: int, vocab_size: int, generator=None, **options) -> dict:
    """Dispatch to the generator called `name`."""
    if name not in GENERATORS:
        raise ConfigError(f"synthetic task {name!r} unknown (expected one of {sorted(GENERATORS)})")
    return GENERATORS[name](n, seq_len, vocab_size, generator=generator, **options)


def masked_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of determined positions (targets ≠ −100) where argmax(logits) = target."""
    mask = targets != IGNORE
    hits = (logits.argmax(-1) == targets) & mask
    return hits.sum().float() / mask.sum().clamp(min=1).float()
