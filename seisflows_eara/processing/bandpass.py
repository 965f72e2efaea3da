"""obspy.signal.filter.bandpass, zero phase, with its filter design cached (SPEC §2 band-pass).

obspy designs the Butterworth filter (scipy.signal.iirfilter, second-order sections) on every
call: 1 ms, as long as filtering a station's three 10-sps traces. The same design and the same
two sosfilt passes (forward, then backward via numpy.flip) as obspy's _filter, the design
computed once per (corners, normalized corners); cases obspy turns into a high-pass or rejects
(upper corner at Nyquist, lower above it) go to obspy's own function. Bit-identical to obspy
(tests/test_measure.py)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from obspy.signal.filter import bandpass
from scipy.signal import iirfilter, sosfilt


@lru_cache(maxsize=256)
def _design(corners: int, low: float, high: float) -> np.ndarray:
    """The second-order sections (shared: callers must not write to them; scipy's sosfilt
    does not accept a read-only array)."""
    return iirfilter(corners, [low, high], btype="band", ftype="butter", output="sos")


def zerophase_bandpass(data: np.ndarray, freqmin: float, freqmax: float, df: float,
                       corners: int, axis: int = -1) -> np.ndarray:
    """bandpass(data, freqmin, freqmax, df, corners, zerophase=True, axis=axis) (module doc)."""
    fe = 0.5 * df
    if freqmax / fe - 1.0 > -1e-6 or freqmin / fe > 1:
        return bandpass(data, freqmin, freqmax, df=df, corners=corners, zerophase=True, axis=axis)
    sos = _design(int(corners), freqmin / fe, freqmax / fe)
    first = np.flip(sosfilt(sos, data, axis=axis), axis=axis)
    return np.flip(sosfilt(sos, first, axis=axis), axis=axis)
