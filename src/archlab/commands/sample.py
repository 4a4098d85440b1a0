"""`archlab sample CKPT`: generate text from a trained (or Hugging Face) decoder model."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "sample", help="generate text from a checkpoint (greedy, temperature, top-k, top-p)",
        description="Generate text from an archlab checkpoint (a run directory, its checkpoints/step_N "
        "directory) or a Hugging Face model folder. Uses the KV cache unless --no-cache. Example: "
        "archlab sample runs/demo/llama --prompt 'ROMEO:' --max-new-tokens 300 --temperature 0.8 --top-k 40")
    p.add_argument("checkpoint", help="run dir, checkpoint dir, or Hugging Face folder")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate (default 200)")
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens only")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with mass ≥ p")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop a sample when it emits this token (repeatable); the EOS token always stops")
    p.add_argument("--num-samples", type=int, default=1, help="independent samples (default 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--no-cache", action="store_true", help="re-run the whole prefix each step (slow; for checks)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    return p


def run(args) -> int:
    import torch

    from archlab.commands._load import load_for_inference
    from archlab.generate import generate

    model, tok, _ = load_for_inference(args.checkpoint, args.device)
    if tok is None:
        raise ValueError(f"no tokenizer.json found with {args.checkpoint!r}; cannot turn the prompt into tokens")
    ids = tok.encode(args.prompt)
    if not ids:
        raise ValueError("--prompt encodes to no tokens; give some text")
    stops = {tok.eos_id}
    for s in args.stop:
        enc = tok.encode(s)
        if len(enc) != 1:
            raise ValueError(f"--stop {s!r} is {len(enc)} tokens; a stop must be a single token")
        stops.add(enc[0])
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    out = generate(model, [ids] * args.num_samples, args.max_new_tokens, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, stop_tokens=sorted(stops), use_cache=not args.no_cache,
                   generator=g)
    for i, row in enumerate(out.tolist()):
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        print(tok.decode(row))
    return 0
