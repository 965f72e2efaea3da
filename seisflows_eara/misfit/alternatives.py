"""Other misfits on the same EARA windows and weights, through pyadjoint (cc_traveltime,
multitaper), so users can compare them with NZCC. Each window is measured on its own segment.

pyadjoint 0.2 returns adjoint sources time-reversed (ready for SPECFEM files) as ∂χ/∂s; we flip
them back to the forward time axis, which the rest of the chain uses (checked against finite
differences of pyadjoint's own waveform misfit in the tests).
"""
from __future__ import annotations

import numpy as np
from obspy import Trace

from seisflows_eara.windows.ragged import offsets_from_lengths

PYADJOINT_KINDS = {"cc_traveltime": "cc_traveltime", "multitaper": "multitaper",
                   "waveform": "waveform"}


def pyadjoint_misfit_and_adjoint(S: np.ndarray, U: np.ndarray, lengths: np.ndarray, dt: float,
                                 kind: str, min_period: np.ndarray, max_period: np.ndarray,
                                 taper_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(χ per window, ∂χ/∂s per window on the forward axis) for window rows S, U zero-padded
    beyond `lengths` (2-D), or for windows of `lengths` stored end to end (1-D, flat)."""
    import warnings

    import pyadjoint
    n = len(lengths)
    chi = np.full(n, np.nan)
    adj = np.zeros_like(S)
    if S.ndim == 1:
        offsets = offsets_from_lengths(lengths)
        rows = [(S[offsets[i]:offsets[i + 1]], U[offsets[i]:offsets[i + 1]],
                 adj[offsets[i]:offsets[i + 1]]) for i in range(n)]
    else:
        rows = [(S[i, :int(lengths[i])], U[i, :int(lengths[i])], adj[i, :int(lengths[i])])
                for i in range(n)]
    for i, (s_i, u_i, a_i) in enumerate(rows):
        m = s_i.size
        if m < 4 or not np.any(s_i) or not np.any(u_i):
            continue
        cfg = pyadjoint.get_config(adjsrc_type=PYADJOINT_KINDS[kind],
                                   min_period=float(min_period[i]),
                                   max_period=float(max_period[i]),
                                   taper_percentage=taper_fraction)
        obs = Trace(u_i.copy(), header=dict(delta=dt, channel="MXZ"))
        syn = Trace(s_i.copy(), header=dict(delta=dt, channel="MXZ"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                a = pyadjoint.calculate_adjoint_source(observed=obs, synthetic=syn, config=cfg,
                                                       windows=[(0.0, (m - 1) * dt)])
            except Exception:   # pyadjoint rejects some windows (e.g. too short for multitaper)
                continue
        chi[i] = a.misfit
        a_i[:] = a.adjoint_source[::-1]
    return chi, adj
