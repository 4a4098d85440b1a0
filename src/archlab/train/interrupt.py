"""Ctrl-C during training: the first one finishes the current step, saves a checkpoint and stops; a second
one aborts at once (the last complete checkpoint stays intact, as after kill -9)."""
from __future__ import annotations

import os
import signal
import threading


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C after saving `checkpoint` at `step`."""

    def __init__(self, step: int, checkpoint: str) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved in {checkpoint}")
        self.step = step
        self.checkpoint = checkpoint


class StopOnInterrupt:
    """Context manager for the training loop: `requested` turns true on the first SIGINT.

    Only the main thread can own signal handlers; elsewhere (a worker thread) Ctrl-C keeps its default meaning.
    """

    def __init__(self) -> None:
        self.requested = False
        self._prev = None

    def _handler(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the second Ctrl-C raises KeyboardInterrupt
        lead = b"\n" if os.isatty(2) else b""  # off the progress bar's line
        os.write(2, lead + b"archlab: interrupted: finishing this step and saving a checkpoint "
                 b"(press Ctrl-C again to abort at once)\n")

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            try:
                self._prev = signal.signal(signal.SIGINT, self._handler)
            except ValueError:  # pragma: no cover - signals unavailable here
                self._prev = None
        return self

    def __exit__(self, *exc) -> None:
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)
            self._prev = None
