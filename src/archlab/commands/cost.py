"""`archlab cost`: per-layer parameters, MACs, memory and roofline of any preset or config file."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from archlab import run_configs
from archlab.config import read_mapping
from archlab.errors import ConfigError

INT_MAX = 2**31 - 1  # counts beyond int32 are not workloads any model here runs; torch sizes overflow soon after
MAX_IMAGE = 65536


def add_parser(sub):
    p = sub.add_parser(
        "cost", help="parameters, MACs/FLOPs, memory and roofline of a model, per layer",
        description="Walk a model (built on the meta device: nothing is allocated) and print per-layer parameters, "
        "MACs (1 MAC = 1 multiply-add, FLOPs = 2·MACs), activation sizes and arithmetic intensity, then totals: "
        "training FLOPs per token (6N + 12·L·H·d·T), inference FLOPs per token with and without a KV cache, "
        "KV-cache bytes. --seed003 recomputes seed 003's worked examples and explains where the seed slips.")
    p.add_argument("model", nargs="?", metavar="PRESET_CONFIG_OR_RUN",
                   help="a preset name, a model or run config (YAML/JSON, or a shipped config's name: a run "
                   "config's task sets the vocabulary from its tokenizer, as training does), or a run folder "
                   "(the model its checkpoint holds: the parameters training reported)")
    # numbers are checked in run() (one line naming the flag and its range, exit 2), not by argparse's usage dump
    p.add_argument("--batch", default=1, metavar="N", help=f"batch size, 1..{INT_MAX} (default 1)")
    p.add_argument("--seq-len", default=None, metavar="T",
                   help="sequence length T, 1..max_seq_len (default: min(max_seq_len, 2048)); also the inference "
                   "context")
    p.add_argument("--context", default=None, metavar="t",
                   help=f"inference context t for the per-token figures, 1..{INT_MAX} (default T)")
    p.add_argument("--image-size", default=None, metavar="S",
                   help="image side for CNNs, from the smallest the model's forward accepts up to "
                   f"{MAX_IMAGE} (default: the config's)")
    p.add_argument("--dtype", default="bf16", help="dtype for bytes: fp32, bf16, fp16, fp8, int8, int4 (default bf16)")
    p.add_argument("--causal-half", action="store_true",
                   help="count only the unmasked half of causal attention (default: the full square the kernels run)")
    p.add_argument("--full", action="store_true", help="one row per layer instead of grouping identical blocks")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--plot", metavar="PNG", help="write a roofline plot to this PNG file")
    p.add_argument("--device", default="h100-sxm", help="roofline device: h100-sxm, a100-sxm or cpu (measured)")
    p.add_argument("--crosscheck", action="store_true",
                   help="also count the forward with torch's FlopCounterMode and compare")
    p.add_argument("--seed003", action="store_true", help="seed 003's examples, recomputed and explained")
    p.add_argument("--crosscheck-all", action="store_true",
                   help="FlopCounterMode vs analytic MACs for every preset (meta device, --batch, T = --seq-len or 16)")
    return p


def _int_flag(value: Any, flag: str, lo: int, hi: int, what: str = "") -> int | None:
    """`value` (an int or the command-line text) as an int in lo..hi, or a ValueError naming the flag and range."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not lo <= n <= hi:
        raise ConfigError(f"{flag} must be an integer in {lo}..{hi}{what}, got {text!r}")
    return n


def check_args(args, cfg: Any = None) -> None:
    """Every number of `archlab cost` in range before any work (0 is a value, not 'use the default').

    With the model's config `cfg`, --seq-len is bounded by its max_seq_len and a bad --image-size is reported
    with the smallest side the model's forward takes."""
    from archlab.cost.model_cost import is_image_config, is_sequence_config

    args.batch = _int_flag(args.batch, "--batch", 1, INT_MAX)
    args.context = _int_flag(args.context, "--context", 1, INT_MAX)
    name = getattr(cfg, "name", type(cfg).__name__)
    if is_sequence_config(cfg):
        args.seq_len = _int_flag(args.seq_len, "--seq-len", 1, cfg.max_seq_len, f" (max_seq_len of {name})")
    else:
        args.seq_len = _int_flag(args.seq_len, "--seq-len", 1, INT_MAX)
    try:
        args.image_size = _int_flag(args.image_size, "--image-size", 1, MAX_IMAGE)
    except ValueError:
        if not is_image_config(cfg):
            raise
        raise image_size_error(args, cfg, str(args.image_size).strip()) from None


def image_size_error(args, cfg, size: Any) -> ConfigError:
    """The error for an image side the model's forward cannot take at this batch, with the range it can."""
    name = getattr(cfg, "name", type(cfg).__name__)
    at = f" for {name} at --batch {args.batch}"
    lo = _smallest_image(cfg, args.batch, size if isinstance(size, int) and size > 0 else 1)
    if lo is None:
        return ConfigError(f"--image-size: {name} takes no image side in 1..{MAX_IMAGE}{at}, got {str(size)!r}")
    return ConfigError(f"--image-size must be an integer in {lo}..{MAX_IMAGE}{at} (smaller images shrink to "
                       f"nothing or leave BatchNorm one value per channel), got {str(size)!r}")


def _image_fails(cfg, batch: int, size: int) -> str | None:
    """Why a meta-device forward of (batch, C, size, size) fails, or None when it runs (nothing is allocated)."""
    from archlab.cost.model_cost import Workload, example_run, meta_model
    from archlab.errors import one_line

    try:
        example_run(cfg, Workload(batch, None, size))(meta_model(cfg))
    except (RuntimeError, ValueError) as e:
        if _too_large(e):
            raise
        return one_line(e)
    return None


def _smallest_image(cfg, batch: int, failing: int) -> int | None:
    """The smallest image side the forward takes (sides above `failing` doubled, then bisected), or None."""
    hi = max(failing, 1)
    while _image_fails(cfg, batch, hi) is not None:
        if hi >= MAX_IMAGE:
            return None
        hi = min(2 * hi, MAX_IMAGE)
    lo = 0  # lo fails (or is 0), hi works: a downsampling stack works from some side on
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _image_fails(cfg, batch, mid) is None:
            hi = mid
        else:
            lo = mid
    return hi


def _too_large(e: BaseException) -> bool:
    text = str(e)
    return "overflow" in text or ("exceeds" in text and "size" in text)


def too_large_error(cfg, e: BaseException) -> ConfigError:
    """The error for a workload whose tensors torch cannot even describe (element / byte counts are int64)."""
    from archlab.errors import one_line

    return ConfigError(f"{getattr(cfg, 'name', type(cfg).__name__)} at this workload has a tensor too large to "
                       f"describe ({one_line(e)}): lower --batch / --seq-len / --image-size or the model's sizes "
                       "(d_model, d_ff, vocab_size, channels); every tensor must stay under 2^63 bytes")


def _run_config_model(path: Path):
    """The model config a run config trains: its model section plus what its task imposes (the tokenizer's
    vocabulary, the number of classes), built the way `archlab train` builds it."""
    from archlab.tasks import build_task
    from archlab.train import load_run_config
    from archlab.train.preflight import check_task_model
    from archlab.train.runtime import seed_everything

    rc = load_run_config(path)
    check_task_model(rc)
    seed_everything(rc.train.seed)
    return rc.model_config(build_task(rc).model_overrides())


def _run_dir_model(path: Path):
    """The model config of a run folder: its newest complete checkpoint's, else (no checkpoint yet) its run.yaml's."""
    from archlab.models import model_config_from_dict
    from archlab.train.checkpoint import latest_checkpoint, open_checkpoint

    if latest_checkpoint(path) is not None or (path / "state.json").is_file():
        _, doc = open_checkpoint(path)
        if isinstance(doc.get("model_config"), dict):
            return model_config_from_dict(doc["model_config"])
    if (path / "run.yaml").is_file():
        return _run_config_model(path / "run.yaml")
    raise ConfigError(f"{str(path)!r} is a folder with no checkpoint and no run.yaml; give a run folder, a preset "
                      "or a config file")


def resolve_model(spec: str):
    """The model config `archlab cost` prices: a run folder's, a run config's (task applied), a model config's
    or a preset's."""
    from archlab.cost.model_cost import resolve_config

    p = Path(spec)
    if p.is_dir():
        return _run_dir_model(p)
    path = run_configs.resolve(p)
    if path.is_file():
        data = read_mapping(path)
        if isinstance(data.get("task"), dict) and isinstance(data.get("model"), dict):
            return _run_config_model(path)
        return resolve_config(path)
    return resolve_config(spec)


def run(args) -> int:
    cfg = resolve_model(args.model) if args.model and not args.crosscheck_all else None
    check_args(args, cfg)
    if args.seed003:
        _seed003(args.json)
        if not args.model:
            return 0
    if args.crosscheck_all:
        return _crosscheck_all(args)
    if not args.model:
        print("archlab cost: error: give a PRESET_OR_CONFIG (see `archlab presets`) or --seed003", file=sys.stderr)
        return 2
    mc = _model_cost(args, cfg)
    out = mc.to_dict()
    if args.crosscheck:
        from archlab.cost.crosscheck import crosscheck

        cc = crosscheck(cfg, args.batch, mc.workload.seq_len, mc.workload.image_size)
        out["crosscheck"] = {"analytic_macs": cc.analytic_macs, "counter_macs": cc.counted_macs,
                             "rel_err": cc.rel_err, "by_op": cc.by_op, "not_visible_to_counter": cc.invisible}
    points = _roofline(args, mc, out) if args.plot else None
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    _print_table(args, mc, out, points)
    return 0


def _seed003(as_json: bool) -> None:
    """`--seed003`: every cost example of seed 003, recomputed."""
    from archlab.cost.seed003 import examples, report

    if as_json:
        print(json.dumps([{k: v for k, v in vars(e).items() if k != "rows"} for e in examples()], indent=2))
    else:
        print(report(), end="")


def _crosscheck_all(args) -> int:
    """`--crosscheck-all`: analytic MACs against FlopCounterMode for every preset; exit 1 past 1 %."""
    from archlab.cost.crosscheck import crosscheck
    from archlab.models import preset_names

    worst = 0.0
    for name in preset_names():
        cc = crosscheck(name, args.batch, 16 if args.seq_len is None else args.seq_len, args.image_size)
        worst = max(worst, cc.rel_err)
        print(cc.line())
    print(f"worst relative error {100 * worst:.3f}% over {len(preset_names())} presets")
    return 0 if worst <= 0.01 else 1


def _model_cost(args, cfg):
    """The model's cost at the workload, or one line saying which size makes it impossible (nothing printed yet:
    the walk runs on the meta device)."""
    from archlab.cost.model_cost import is_image_config, model_cost

    try:
        return model_cost(cfg, args.batch, args.seq_len, args.image_size, args.dtype,
                          causal_half=args.causal_half, context=args.context)
    except (RuntimeError, ValueError) as e:
        if _too_large(e):
            raise too_large_error(cfg, e) from None
        if not is_image_config(cfg):
            raise
        size = args.image_size if args.image_size is not None else cfg.image_size
        try:
            bad_size = _image_fails(cfg, args.batch, size) is not None
            err = image_size_error(args, cfg, size) if bad_size else None
        except RuntimeError as e2:  # _image_fails lets only a too-large size through
            raise too_large_error(cfg, e2) from None
        if err is None:
            raise
        raise err from None


def _roofline(args, mc, out: dict) -> list:
    """`--plot FILE`: the roofline plot written, its path in `out`; the points (for the table)."""
    from archlab.cost.roofline import get_device, model_points, plot_roofline

    dev = get_device(args.device)
    dtype = args.dtype if args.dtype in dev.peak_flops else "fp32"
    points = model_points(mc, dev, dtype)
    out["plot"] = str(plot_roofline(points, dev, args.plot, dtype, f"{mc.name} on {dev.name} ({dtype})"))
    return [(dev, dtype, pt) for pt in points]


def _print_table(args, mc, out: dict, points: list | None) -> None:
    """The cost table, the cross-check line and the roofline points for the terminal."""
    from archlab.cost.model_cost import cost_table

    print(cost_table(mc=mc, collapse=not args.full))
    if args.crosscheck:
        c = out["crosscheck"]
        print(f"FlopCounterMode: {c['counter_macs']:,} MACs, analytic (visible part) differs by "
              f"{100 * c['rel_err']:.3f}%" + (f"; not visible to the counter: {c['not_visible_to_counter']}"
                                               if c["not_visible_to_counter"] else ""))
    for dev, dtype, pt in points or []:
        print(f"roofline {dev.name} {dtype}: {pt.label:<40} I={pt.intensity:9.1f} FLOP/B  {pt.bound}-bound  "
              f"≥ {pt.time * 1e3:.3f} ms")
    if points is not None:
        print(f"wrote {out['plot']}")
