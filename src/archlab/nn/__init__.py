"""archlab.nn: named components, one concept per file.

Every module of this package is imported here, so a component registers itself (archlab.registry)
by existing: adding a mixer, a position encoding or a norm is one new file, no list to extend.
"""
import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")

from archlab.nn.attention import Attention, KVCache, attention_reference, attention_sdpa, build_mask  # noqa: E402,F401
from archlab.nn.block import Block  # noqa: E402,F401
from archlab.nn.embedding import TokenEmbedding  # noqa: E402,F401
from archlab.nn.ffn import FeedForward  # noqa: E402,F401
from archlab.nn.norm import RMSNorm  # noqa: E402,F401
from archlab.nn.position import LearnedPositions, RotaryEmbedding, SinusoidalPositions  # noqa: E402,F401
