"""Training: run configs, AdamW + schedule, the loop, atomic resumable checkpoints."""
from archlab.errors import CheckpointError  # noqa: F401
from archlab.train.checkpoint import load_checkpoint, save_checkpoint  # noqa: F401
from archlab.train.run_config import (  # noqa: F401
    RunConfig,
    TrainConfig,
    apply_run_overrides,
    load_run_config,
    resumed_run_config,
    run_config_from_dict,
)
from archlab.train.run_folder import RunFinished  # noqa: F401
from archlab.train.trainer import build_run, read_metrics, train  # noqa: F401
