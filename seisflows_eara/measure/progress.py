"""Progress of long per-event work (issue 18 item 5): units done / total and the rate, logged at
most every `interval` s and once at the end, so a 2000-station event visibly moves."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

LOG = logging.getLogger("seisflows_eara.measure")


def progress_logger(label: str, interval: float = 10.0, log: logging.Logger = LOG,
                    clock: Callable[[], float] = time.monotonic) -> Callable[[int, int], None]:
    """A `progress(done, total)` callback for measure_event / prepare_event that logs
    '<label>: <done>/<total> stations (<rate> stations/s)' at INFO."""
    t0 = clock()
    last = [t0 - interval]

    def progress(done: int, total: int) -> None:
        now = clock()
        if done < total and now - last[0] < interval:
            return
        last[0] = now
        rate = done / (now - t0) if now > t0 else float("nan")
        log.info("%s: %d/%d stations (%.2f stations/s)", label, done, total, rate)
    return progress
