"""archlab.nn: named components, one concept per file."""
from archlab.nn import (  # noqa: F401  (importing a module registers its components)
    attention,
    block,
    conv_mixer,
    embedding,
    ffn,
    mamba,
    mixers,
    norm,
    position,
    recurrent,
    ssm,
    token_mixing,
)
from archlab.nn.attention import Attention, KVCache, attention_reference, attention_sdpa, build_mask  # noqa: F401
from archlab.nn.block import Block  # noqa: F401
from archlab.nn.embedding import TokenEmbedding  # noqa: F401
from archlab.nn.ffn import FeedForward  # noqa: F401
from archlab.nn.norm import RMSNorm  # noqa: F401
from archlab.nn.position import LearnedPositions, RotaryEmbedding, SinusoidalPositions  # noqa: F401
