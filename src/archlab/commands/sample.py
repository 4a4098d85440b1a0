"""`archlab sample CKPT`: generate text from a trained (or Hugging Face) decoder model, streamed as produced."""
from __future__ import annotations

import sys

from archlab.commands._machine import add_inference_options, load_model
from archlab.errors import ConfigError


def count(text: str) -> int:
    """A token count: an integer, also written as 1e9 or 1_000 (argparse type)."""
    import argparse

    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")) or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


def add_parser(sub):
    p = sub.add_parser(
        "sample", help="generate text from a checkpoint (greedy, temperature, top-k, top-p)",
        description="Generate text from an archlab checkpoint (a run directory, its checkpoints/step_N "
        "directory) or a Hugging Face model folder. Uses the KV cache unless --no-cache. The text is printed "
        "as it is produced (one sample); Ctrl-C stops and keeps what was generated. Models with RoPE (or no "
        "positions) generate past max_seq_len as transformers does; models with a position table stop there; "
        "--slide-window slides a max_seq_len window instead (any model). Example: "
        "archlab sample runs/demo/llama --prompt 'ROMEO:' --max-new-tokens 300 --temperature 0.8 --top-k 40")
    p.add_argument("checkpoint", help="run dir, checkpoint dir, or Hugging Face folder")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline); - reads it from stdin")
    p.add_argument("--prompt-file", metavar="PATH", help="read the prompt from this UTF-8 text file")
    p.add_argument("--max-new-tokens", type=count, default=200, help="tokens to generate (default 200)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="softmax temperature, > 0; exactly 0 means greedy decoding (default 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample from the k ≥ 1 most likely tokens only")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with mass ≥ p (0 < p ≤ 1)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop a sample when it emits this token (repeatable); the EOS token always stops")
    p.add_argument("--num-samples", type=int, default=1, help="independent samples (default 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--no-cache", action="store_true", help="re-run the whole prefix each step (slow; for checks)")
    p.add_argument("--slide-window", action="store_true",
                   help="past max_seq_len, keep going on a sliding max_seq_len-token window: lets a model with a "
                   "position table (learned, sinusoidal) continue, and keeps a RoPE model trained on short "
                   "windows inside the context it was trained on (instead of extending positions)")
    add_inference_options(p)
    return p


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix (what of `b` was already printed as `a`)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Streamer:
    """Print the text of one generated row as tokens arrive (decoding a few tokens of context with each new
    piece, so multi-byte characters and tokenizers that strip leading spaces print correctly)."""

    CONTEXT = 4

    def __init__(self, tok, out=None) -> None:
        self.tok, self.out = tok, out or sys.stdout
        self.done: list[int] = []
        self.pending: list[int] = []
        self.n = 0

    def __call__(self, col) -> None:
        self.n += 1
        self.pending.append(int(col[0]))
        ctx = self.done[-self.CONTEXT:]
        before = self.tok.decode(ctx)
        text = self.tok.decode(ctx + self.pending)
        if text.endswith("\ufffd") and len(self.pending) < 8:  # an incomplete UTF-8 character: wait for the rest
            return
        self.out.write(text[_common_prefix(before, text):])
        self.out.flush()
        self.done += self.pending
        self.pending = []

    def finish(self) -> None:
        if self.pending:
            ctx = self.done[-self.CONTEXT:]
            before, text = self.tok.decode(ctx), self.tok.decode(ctx + self.pending)
            self.out.write(text[_common_prefix(before, text):])
        self.out.write("\n")
        self.out.flush()


class Progress:
    """For several samples (printed at the end): a token counter on stderr, when it is a terminal."""

    def __init__(self, total: int, err=None) -> None:
        self.err, self.total, self.n, self.last = err or sys.stderr, total, 0, 0.0

    def __call__(self, col) -> None:
        import time

        self.n += 1
        now = time.monotonic()
        if now - self.last > 0.5:
            self.last = now
            self.err.write(f"\r{self.n:,} / {self.total:,} tokens")
            self.err.flush()

    def finish(self) -> None:
        if self.last:
            self.err.write("\r" + " " * 40 + "\r")
            self.err.flush()


def read_prompt(args) -> str:
    """The prompt: --prompt TEXT, --prompt - (standard input) or --prompt-file PATH."""
    from pathlib import Path

    if args.prompt_file and args.prompt not in ("\n", None):
        raise ConfigError("give the prompt once: --prompt or --prompt-file, not both")
    try:
        if args.prompt_file:
            return Path(args.prompt_file).read_text(encoding="utf-8")
        return sys.stdin.read() if args.prompt == "-" else args.prompt
    except UnicodeDecodeError as e:
        where = repr(args.prompt_file) if args.prompt_file else "standard input"
        raise ConfigError(f"the prompt in {where} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _prepare(args):
    """Check the options, load the model and tokenizer: (model, tokenizer, prompt ids, stop token ids)."""
    from archlab.generate import check_sampling

    check_sampling(args.temperature, args.top_k, args.top_p, names=("--temperature", "--top-k", "--top-p"))
    if args.max_new_tokens < 0:
        raise ConfigError(f"--max-new-tokens={args.max_new_tokens} must be ≥ 0")
    if args.num_samples < 1:
        raise ConfigError(f"--num-samples={args.num_samples} must be ≥ 1")
    model, tok, _ = load_model("sample", args)
    if tok is None:
        raise ConfigError(f"no tokenizer.json found with {args.checkpoint!r}; cannot turn the prompt into tokens")
    ids = tok.encode(read_prompt(args))
    if not ids:
        raise ConfigError("--prompt encodes to no tokens; give some text")
    stops = {tok.eos_id}
    for s in args.stop:
        enc = tok.encode(s)
        if len(enc) != 1:
            raise ConfigError(f"--stop {s!r} is {len(enc)} tokens; a stop must be a single token")
        stops.add(enc[0])
    return model, tok, ids, stops


def run(args) -> int:
    import torch

    from archlab.generate import GenerationInterrupted, generate, position_limit

    model, tok, ids, stops = _prepare(args)
    limit, ctx = position_limit(model), model.cfg.max_seq_len
    if limit is None and not args.slide_window and len(ids) + args.max_new_tokens - 1 > ctx:
        print(f"note: generating past max_seq_len={ctx}: positions extend (pos.kind={model.cfg.pos.kind!r}) as in "
              f"transformers; --slide-window keeps a {ctx}-token window instead", file=sys.stderr)
    stream = Streamer(tok) if args.num_samples == 1 else None
    progress = Progress(args.max_new_tokens) if stream is None and sys.stderr.isatty() else None
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    try:
        if stream is not None:
            print(tok.decode(ids), end="", flush=True)
        try:
            out = generate(model, [ids] * args.num_samples, args.max_new_tokens, temperature=args.temperature,
                           top_k=args.top_k, top_p=args.top_p, stop_tokens=sorted(stops),
                           use_cache=not args.no_cache, generator=g, window=args.slide_window,
                           on_token=stream or progress, interruptible=True)
            interrupted = None
        except GenerationInterrupted as e:
            out, interrupted = e.ids, e
        if progress is not None:
            progress.finish()
        if stream is not None:
            stream.finish()
        else:
            for i, row in enumerate(out.tolist()):
                print(f"--- sample {i + 1} ---")
                print(tok.decode(row))
            sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if interrupted is not None:
        print(f"interrupted: kept the {out.shape[1] - len(ids)} tokens generated so far", file=sys.stderr)
        return 130
    return 0
