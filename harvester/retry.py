"""Retries and rate-limit waits, in one place, chosen by error type (the twarc2 way).

Sources wrap each call to their client in `Retrying.call`, after translating the client
library's exceptions into harvester.base errors. The clock and sleep are injected, so tests
run schedules of failures without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

from harvester.base import AuthError, RateLimited, SourceError, TransientError

log = logging.getLogger("innoverheid.harvest")
T = TypeVar("T")


class GaveUp(SourceError):
    """Retries or the rate-limit wait ran out; the source ends this run, bookmarks intact."""


@dataclass
class RetryPolicy:
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_rate_limit_wait: float = 900.0
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    rng: random.Random = field(default_factory=random.Random)
    # Seconds slept in total: shown in the run summary and checked by tests.
    slept: float = 0.0

    @classmethod
    def from_config(cls, harvest_cfg, **overrides) -> "RetryPolicy":
        return cls(
            max_retries=harvest_cfg.max_retries,
            backoff_base=harvest_cfg.backoff_base,
            backoff_max=harvest_cfg.backoff_max,
            max_rate_limit_wait=harvest_cfg.max_rate_limit_wait,
            **overrides,
        )

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many clients, bounded by backoff_max.
        cap = min(self.backoff_max, self.backoff_base * (2**attempt))
        return self.rng.uniform(0, cap) if cap > 0 else 0.0

    def _sleep(self, seconds: float) -> None:
        self.slept += seconds
        if seconds > 0:
            self.sleep(seconds)

    def call(self, what: str, fn: Callable[[], T], translate: Callable[[Exception], Exception]) -> T:
        """Run fn; on a translated TransientError retry with backoff, on RateLimited wait for the reset."""
        attempt = 0
        rate_waits = 0
        while True:
            try:
                return fn()
            except Exception as raw_exc:  # noqa: BLE001 - translated below, re-raised if unknown
                exc = raw_exc if isinstance(raw_exc, SourceError) else translate(raw_exc)
                if isinstance(exc, AuthError):
                    raise exc from None
                if isinstance(exc, RateLimited):
                    rate_waits += 1
                    wait = self._rate_wait(exc)
                    if wait is None or rate_waits > self.max_retries + 1:
                        raise GaveUp(
                            f"{what}: rate limited and the reset is further away than "
                            f"harvest.max_rate_limit_wait ({self.max_rate_limit_wait:.0f} s); "
                            "stopping this source for now, the next run resumes from here"
                        ) from None
                    log.warning("%s: rate limited by the platform; waiting %.0f s until the announced reset",
                                what, wait)
                    self._sleep(wait)
                    continue
                if isinstance(exc, TransientError):
                    if attempt >= self.max_retries:
                        raise GaveUp(f"{what}: still failing after {attempt + 1} attempts: {exc}") from None
                    delay = self._backoff(attempt)
                    attempt += 1
                    log.warning("%s: %s; retry %d of %d in %.1f s", what, exc, attempt, self.max_retries, delay)
                    self._sleep(delay)
                    continue
                if exc is raw_exc:
                    raise
                raise exc from None

    def _rate_wait(self, exc: RateLimited) -> float | None:
        if exc.reset_at is None:
            wait = min(self.backoff_max, 60.0)
        else:
            wait = max(0.0, (exc.reset_at - self.now()).total_seconds()) + 1.0
        return wait if wait <= self.max_rate_limit_wait else None
