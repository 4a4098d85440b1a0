"""Suite-wide settings: `make test` runs two xdist workers on two cores, so each worker uses one torch
thread (more only oversubscribes the cores and slows every test)."""
import torch

torch.set_num_threads(1)
