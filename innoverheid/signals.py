"""A clean stop on SIGTERM and SIGINT: finish and commit the current page, then exit.

The first signal only sets a flag. The harvest runner checks it after each committed page;
waits (retry backoff, rate-limit waits) check it too and end early, since nothing half-done
is ever committed. A second signal exits at once: the page in progress is then simply not
stored, and the next run fetches it again from the bookmark.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

STOP_MESSAGE = "stopped by signal; the next run resumes from the bookmarks"
HANDLED = (signal.SIGTERM, signal.SIGINT)


class StopRequested(BaseException):
    """Raised from a wait when a stop was requested.

    A BaseException, like KeyboardInterrupt, so that a source's `except Exception` does not
    record the stop as a failure of the platform.
    """


class StopFlag:
    """Callable `should_stop()`; set by the first signal."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self._event.is_set()

    def request(self, signum: int | None = None) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "request"

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells report a process ended by a signal."""
        return 128 + self.signum if self.signum else 1


def _say(text: str) -> None:
    # os.write, not print: a handler may run while the main thread is inside a print.
    try:
        os.write(2, f"innoverheid: {text}\n".encode())
    except OSError:
        pass


@contextlib.contextmanager
def graceful_stop(flag: StopFlag | None = None) -> Iterator[StopFlag]:
    """Install the SIGTERM/SIGINT handlers for the duration of the block (main thread only)."""
    flag = flag or StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if flag():
            _say(f"{name} again: stopping at once; the page in progress is not saved and the next run "
                 "fetches it again")
            os._exit(128 + signum)
        flag.request(signum)
        # No logging here: a handler that logs can interleave with a log call it interrupted.
        _say(f"received {name}: stopping after the current page (send it again to stop at once)")

    previous = {s: signal.signal(s, handler) for s in HANDLED}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def interruptible_sleep(should_stop: Callable[[], bool]) -> Callable[[float], None]:
    """A `sleep` for the retry policy that ends with StopRequested as soon as a stop is asked for."""

    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        wait = getattr(should_stop, "wait", None)
        while True:
            if should_stop():
                raise StopRequested("stop requested during a wait; nothing was left half-stored")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if wait is not None:
                wait(min(left, 1.0))
            else:
                time.sleep(min(left, 0.2))

    return sleep
