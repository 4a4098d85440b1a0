"""`archlab convert`: Hugging Face directory <-> archlab model directory."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser(
        "convert", help="convert Hugging Face checkpoints to archlab and back",
        description="Convert between a Hugging Face model directory (config.json + model.safetensors, or a "
        ".gguf file) and an archlab model directory. Supported: GPT-2, LLaMA, BERT (base / masked-LM / "
        "sequence classification), Marian and Mamba. Examples:\n"
        "  archlab convert --from-hf ./hf-gpt2 --to ./gpt2-archlab\n"
        "  archlab convert --from ./gpt2-archlab --to-hf ./hf-again --check",
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-hf", metavar="DIR", help="Hugging Face model directory or .gguf file to import")
    src.add_argument("--from", dest="from_archlab", metavar="DIR|PRESET",
                     help="archlab model/checkpoint directory (or a preset name: random weights) to export")
    dst = p.add_mutually_exclusive_group(required=True)
    dst.add_argument("--to", metavar="DIR", help="write an archlab model directory here")
    dst.add_argument("--to-hf", metavar="DIR", help="write a Hugging Face model directory here")
    p.add_argument("--check", action="store_true",
                   help="after writing an HF directory, load it with transformers and report the max logit difference")
    return p


def run(args) -> int:
    import torch

    from archlab.interop import InteropError, is_hf_dir, load_pretrained, save_archlab, to_hf

    tokenizer = None
    if args.from_hf:
        if not Path(args.from_hf).exists():
            raise FileNotFoundError(f"--from-hf {args.from_hf!r} does not exist")
        if not is_hf_dir(args.from_hf):
            raise InteropError(f"--from-hf {args.from_hf!r} is not a Hugging Face model (no config.json with "
                               "model_type, no .gguf file)")
        model, tokenizer = load_pretrained(args.from_hf)
    elif Path(args.from_archlab).exists():
        model, tokenizer = load_pretrained(args.from_archlab)
    else:
        from archlab.models import build_model, preset, preset_names

        if args.from_archlab not in preset_names():
            raise FileNotFoundError(f"--from {args.from_archlab!r} is neither a directory nor a preset name")
        torch.manual_seed(0)
        model = build_model(preset(args.from_archlab)).eval()
    n = model.num_parameters() if hasattr(model, "num_parameters") else sum(p.numel() for p in model.parameters())
    if args.to:
        out = save_archlab(model, args.to, tokenizer)
        print(f"wrote archlab model ({n:,} parameters, {model.cfg.name}) to {out}")
        return 0
    out = to_hf(model, args.to_hf, tokenizer)
    print(f"wrote Hugging Face model ({n:,} parameters) to {out}")
    if args.check:
        from archlab.interop.parity import check_against_transformers

        diff = check_against_transformers(model, out)
        print(f"transformers check: max |logit difference| = {diff:.3g}")
        if diff > 1e-4:
            print("check FAILED (> 1e-4)")
            return 1
    return 0
