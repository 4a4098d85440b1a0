"""`archlab convert`: Hugging Face directory <-> archlab model directory, checked against transformers."""
from __future__ import annotations

import os
from pathlib import Path

from archlab.errors import ConfigError, MissingFileError

TOL = 1e-4


def add_parser(sub):
    p = sub.add_parser(
        "convert", help="convert Hugging Face checkpoints to archlab and back",
        description="Convert between a Hugging Face model directory (config.json + model.safetensors, or a "
        ".gguf file) and an archlab model directory. Supported: GPT-2, LLaMA, BERT (base / masked-LM / "
        "sequence classification), Marian and Mamba. When `transformers` is installed the result is checked "
        f"against it (logits on random token ids, max |difference| <= {TOL:g}; a failed check is an error, "
        "exit 2); --no-check skips that. Examples:\n"
        "  archlab convert --from-hf ./hf-gpt2 --to ./gpt2-archlab\n"
        "  archlab convert --from ./gpt2-archlab --to-hf ./hf-again\n"
        "  archlab convert --from runs/char --to-hf ./hf-char      # a run's character tokenizer is converted too",
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-hf", metavar="DIR", help="Hugging Face model directory or .gguf file to import")
    src.add_argument("--from", dest="from_archlab", metavar="DIR|PRESET",
                     help="archlab model/checkpoint directory (or a preset name: random weights) to export")
    dst = p.add_mutually_exclusive_group(required=True)
    dst.add_argument("--to", metavar="DIR", help="write an archlab model directory here")
    dst.add_argument("--to-hf", metavar="DIR", help="write a Hugging Face model directory here")
    chk = p.add_mutually_exclusive_group()
    chk.add_argument("--check", action="store_true",
                     help="require the transformers check (an error when transformers is not installed)")
    chk.add_argument("--no-check", action="store_true", help="skip the transformers check")
    return p


def check_output_dir(path: str, flag: str) -> None:
    """Refuse, before any work, an output path that is a file, lies under a file, or cannot be written."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {path!r} exists and is not a directory")
    parent = p
    while not parent.exists():
        parent = parent.parent
    if parent != p and not parent.is_dir():
        raise ConfigError(f"{flag} {path!r}: {str(parent)!r} is a file, so no directory can be created under it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path!r}: {str(parent)!r} is not writable")


def _transformers_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformers") is not None


def _parity(model, hf_dir, what: str) -> None:
    """Compare `model` with transformers loading `hf_dir`; print the figure, raise when it exceeds TOL."""
    from transformers.utils import logging as hf_logging

    from archlab.interop.parity import check_against_transformers

    hf_logging.disable_progress_bar()  # keep the command's output to its own lines
    diff = check_against_transformers(model, hf_dir)
    print(f"transformers check ({what}): max |logit difference| = {diff:.3g} (limit {TOL:g})")
    if not diff <= TOL:  # NaN fails too
        raise ConfigError(f"parity check failed: archlab and transformers differ by {diff:.3g} > {TOL:g} on "
                          f"{str(hf_dir)!r} (--no-check skips the check)")


def run(args) -> int:
    import torch

    from archlab.interop import InteropError, is_hf_dir, load_pretrained, save_archlab, to_hf

    check = not args.no_check
    if check and not _transformers_available():
        if args.check:
            raise ConfigError("--check needs the `transformers` package (pip install transformers)")
        print("transformers check skipped: transformers is not installed")
        check = False
    check_output_dir(args.to or args.to_hf, "--to" if args.to else "--to-hf")
    tokenizer = None
    if args.from_hf:
        if not Path(args.from_hf).exists():
            raise MissingFileError(f"--from-hf {args.from_hf!r} does not exist")
        if not is_hf_dir(args.from_hf):
            raise InteropError(f"--from-hf {args.from_hf!r} is not a Hugging Face model (no config.json with "
                               "model_type, no .gguf file)")
        model, tokenizer = load_pretrained(args.from_hf)
    elif Path(args.from_archlab).exists():
        model, tokenizer = load_pretrained(args.from_archlab)
    else:
        from archlab.models import build_model, preset, preset_names

        if args.from_archlab not in preset_names():
            raise MissingFileError(f"--from {args.from_archlab!r} is neither a directory nor a preset name")
        torch.manual_seed(0)
        model = build_model(preset(args.from_archlab)).eval()
    n = model.num_parameters() if hasattr(model, "num_parameters") else sum(p.numel() for p in model.parameters())
    if args.to:
        out = save_archlab(model, args.to, tokenizer)
        print(f"wrote archlab model ({n:,} parameters, {model.cfg.name}) to {out}")
        if check:
            src = Path(args.from_hf)
            if src.suffix == ".gguf" or not (src / "config.json").is_file():
                print("transformers check skipped: the source is a GGUF file")
            else:  # the checkpoint as written, read back
                _parity(load_pretrained(out)[0], src,
                        "the written archlab model vs transformers loading the source")
        return 0
    out = to_hf(model, args.to_hf, tokenizer)
    print(f"wrote Hugging Face model ({n:,} parameters) to {out}")
    if check:
        _parity(model, out, "transformers loading the written folder")
    return 0
