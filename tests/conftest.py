"""Suite-wide settings: `make test` runs two xdist workers on two cores, so each worker uses one torch
thread (more only oversubscribes the cores and slows every test)."""
import os

import torch

torch.set_num_threads(1)
# the busy-machine warning of train/eval/sample/translate depends on what else runs: off, so that tests which
# compare stderr do not depend on the load (tests/train/test_newcomer_experience.py turns it back on)
os.environ["ARCHLAB_NO_BUSY_WARNING"] = "1"
