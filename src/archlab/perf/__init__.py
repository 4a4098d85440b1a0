"""Speed: static-cache decoding, fast-math switches, FLOP/MFU accounting, and GPU kernels with references."""
from archlab.perf.flops import H100_SXM_BF16_DENSE_PEAK, mfu, training_flops_per_token  # noqa: F401
from archlab.perf.speed import checkpoint_blocks, enable_tf32, sdpa_backend  # noqa: F401
from archlab.perf.static_decode import StaticDecoder, StaticKVCache  # noqa: F401
