"""Pre-emption: SLURM's warning signal (SIGUSR1, requested with `--signal`) or its SIGTERM ends a training
run cleanly — a checkpoint at the current step, then exit code 75 — and the retry resumes from it.

Exit code 75 is EX_TEMPFAIL ("temporary failure, try again", sysexits.h): the job failed, so the workflow
manager retries it (profiles/slurm: `retries`), and the retry continues from the checkpoint bit-exactly
(the batch order and all RNG states are in it). The handler only sets a flag: the loop looks at it after
each optimiser step, so a checkpoint is never written from inside a signal handler or mid-step.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL
SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class Preempted(Exception):
    """Training stopped on a pre-emption signal after writing `checkpoint` at `step`."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: stopped at step {step}, checkpoint {checkpoint}; "
                         f"exit code {PREEMPTED_EXIT_CODE}, a retry resumes from it")


@dataclass
class StopFlag:
    """Set by the signal handler; read by the loop after each step."""

    signum: int | None = None

    @property
    def is_set(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def preemption_signals() -> Iterator[StopFlag]:
    """SIGUSR1 / SIGTERM set the yielded flag for the duration; the previous handlers come back after.

    Outside the main thread (where Python cannot install handlers) the flag is never set.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        if flag.signum is None:
            log.warning("%s received: checkpointing after this step, then exiting with %d",
                        signal.Signals(signum).name, PREEMPTED_EXIT_CODE)
        flag.signum = signum

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
