"""SIGINT and SIGTERM during training: finish the current step, save a checkpoint, exit cleanly.

Inside ``with StopSignal() as stop:`` the first SIGINT or SIGTERM only sets ``stop.received`` (the signal's name);
the training loop checks it after each step. A second one exits with 128 + the signal number; outside the block
signals act as usual. MindSpore's dataset pipeline installs its own SIGTERM handler when it starts (at the first
batch fetched), so the loop calls :meth:`StopSignal.arm` again once the first step is done.
"""
import signal
import threading
from types import FrameType
from typing import Dict, Optional

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopSignal:
    """Records the first SIGINT/SIGTERM while active (main thread only; elsewhere it records nothing)."""

    def __init__(self) -> None:
        self.received: Optional[str] = None
        self._previous: Dict[int, object] = {}

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.received is not None:
            previous = self._previous.get(signum)
            if callable(previous):
                previous(signum, frame)
            raise SystemExit(128 + signum)
        self.received = signal.Signals(signum).name

    def arm(self) -> None:
        """(Re)install the handlers (main thread only), keeping the first handlers replaced to restore them."""
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                previous = signal.signal(signum, self._handle)
                self._previous.setdefault(signum, previous)

    def __enter__(self) -> "StopSignal":
        self.arm()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
