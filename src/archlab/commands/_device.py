"""`--device` for the inference commands: a name torch knows and hardware that is present, checked first."""
from __future__ import annotations

from archlab.errors import ConfigError


def check_device(name: str, flag: str = "--device") -> str:
    """Return `name` when it is usable here; raise ValueError with one clear line otherwise."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{flag} {name!r} is not a device name torch knows (use cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{flag} {name!r}: CUDA is not available on this machine (torch {torch.__version__}, "
                              f"built {'with CUDA ' + torch.version.cuda if torch.version.cuda else 'without CUDA'});"
                              " use --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"{flag} {name!r}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{flag} {name!r}: Apple MPS is not available on this machine; use --device cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"{flag} {name!r}: archlab runs on cpu, cuda or mps, not {dev.type!r}")
    return name
