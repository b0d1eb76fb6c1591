"""Logging a failing detector once, so an operator learns why its signal is missing.

The runtime keeps the other detectors running and counts every failed window in a metric;
a counter alone does not say *why* (a model file that does not match its code, a bad
input shape), so the first failure of each detector is logged with the exception's type
and the start of its message. Only that: no window, session or signal data, which an
exception's arguments could carry, and one line per detector, not one per window.
"""

from __future__ import annotations

import logging
import threading

MESSAGE_CHARS = 200


class FailureLog:
    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def record(self, detector: str, exc: BaseException, where: str) -> None:
        with self._lock:
            if detector in self._seen:
                return
            self._seen.add(detector)
        self._logger.error(
            "detector %s failed in %s (%s: %s); its windows are skipped and counted, "
            "further failures of it are not logged",
            detector,
            where,
            type(exc).__name__,
            str(exc)[:MESSAGE_CHARS],
        )
