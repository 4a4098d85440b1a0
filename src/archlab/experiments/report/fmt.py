"""Numbers as the reports print them: three significant figures everywhere, large counts with a unit suffix."""
from __future__ import annotations

import math
from typing import Any

SUFFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def sig(x: Any, digits: int = 3) -> str:
    """`x` to `digits` significant figures: 0.0312, 1.25, 854M, 5.30M, 12.3k, 3.54e-05; '–' for None / NaN;
    text and booleans unchanged."""
    if x is None:
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (isinstance(x, int) and abs(x) < 1000):
        return str(x)  # text, flags and small counts (seeds, steps) as they are
    x = float(x)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    a = abs(x)
    for scale, suffix in SUFFIXES:
        if a >= scale * (1 - 0.5 * 10 ** (-digits)):
            return _fixed(x / scale, digits) + suffix
    if a < 1e-3:
        return f"{x:.{digits - 1}e}"
    return _fixed(x, digits)


def _fixed(x: float, digits: int) -> str:
    """Fixed-point with `digits` significant figures, trailing zeros kept (1.50, 0.0312, 854)."""
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(float(f"{x:.{digits}g}"))))
    decimals = max(digits - 1 - exp, 0)
    return f"{x:.{decimals}f}"


def pm(mean: Any, sd: Any, n: int) -> str:
    """'mean ± sd' (just the mean for one value), both to three significant figures."""
    return f"{sig(mean)} ± {sig(sd)}" if n > 1 else sig(mean)


def interval(d: Any, lo: Any, hi: Any) -> str:
    """'d [lo, hi]' to three significant figures."""
    return f"{sig(d)} [{sig(lo)}, {sig(hi)}]"


def md_cell(text: Any) -> str:
    """`text` as one markdown table cell: whitespace runs (newlines included) as one space, '|' escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")
