"""Compact store of an event's adjoint sources before the categorical weight W_c (SPEC eq. 3).

The kernel step recombines each event's adjoint sources with the ALL-event W_c (Table 1), known
only once every event is measured. Instead of (3, npts) arrays per category and station on the
solver's time axis (`<event>.adjoint_parts.pkl`, ~5 GB per event at full size), the store keeps
only the windows' samples: the weighted per-window adjoint W_es · W_w · ∂χ/∂s, flat, windows end to
end (seisflows_eara.windows.ragged), windows that are zero throughout left out. Where each window
goes (offsets, window positions, components, bands, back-azimuths, solver axes) is the frozen
measurement, PreparedEvent, pickled beside it; the store carries a digest of that layout so a
store is never placed with another measurement's windows.

Recombination runs the same code on the same numbers as the measurement did
(PreparedEvent.adjoint_sources), so its adjoint sources are bit-identical to the forward's and to
combine_adjoint of the full per-category arrays. (A zero window adds +0.0 to sums that start at +0.0: x + 0.0 = x for
every x but −0.0, which such sums never hold.)
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from seisflows_eara.io.atomic import atomic_open
from seisflows_eara.measure.event import PreparedEvent
from seisflows_eara.windows.ragged import segment_sums

#: version of the .npz layout below
STORE_FORMAT = 1


class AdjointStoreError(ValueError):
    """A store that does not belong to the frozen measurement beside it, or is unreadable."""


def layout_digest(prepared: PreparedEvent) -> str:
    """Identity of the window layout: offsets, stations, categories, bands, components and
    positions of every window."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(prepared.offsets, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(prepared.station_index, dtype=np.int64).tobytes())
    for d in prepared.windows:
        h.update(f"{d.window.category}|{d.window.band}|{d.window.component}|{d.i0}|{d.i1};"
                 .encode())
    return h.hexdigest()


def write_adjoint_store(path: str | os.PathLike, prepared: PreparedEvent, adj: np.ndarray) -> int:
    """Write the flat weighted window adjoints `adj` (length prepared.offsets[-1]) to `path`
    (.npz, replaced atomically). Returns the bytes written."""
    adj = np.asarray(adj, dtype=np.float64)
    offsets = np.asarray(prepared.offsets, dtype=np.int64)
    if adj.size != offsets[-1]:
        raise ValueError(f"event {prepared.event.name}: {adj.size} adjoint samples for windows of "
                         f"{offsets[-1]} samples")
    kept = segment_sums((adj != 0).astype(np.int64), offsets) > 0     # NaN != 0: kept
    samples = adj[np.repeat(kept, np.diff(offsets))]
    with atomic_open(path, "wb") as f:
        np.savez(f, format=np.int64(STORE_FORMAT), layout=np.array(layout_digest(prepared)),
                 nwin=np.int64(offsets.size - 1), kept=np.flatnonzero(kept).astype(np.int64),
                 samples=samples)
    return os.path.getsize(path)


def read_adjoint_store(path: str | os.PathLike, prepared: PreparedEvent) -> np.ndarray:
    """The flat weighted window adjoints of `write_adjoint_store` (zeros for left-out windows);
    AdjointStoreError when the file is unreadable or not of this measurement's windows."""
    try:
        with np.load(path, allow_pickle=False) as z:
            fmt, layout, nwin = int(z["format"]), str(z["layout"]), int(z["nwin"])
            kept, samples = z["kept"], z["samples"]
    except (OSError, ValueError, KeyError) as e:
        raise AdjointStoreError(f"adjoint store {path} unreadable ({e})") from e
    if fmt != STORE_FORMAT:
        raise AdjointStoreError(f"adjoint store {path}: format {fmt}, this version reads "
                                f"{STORE_FORMAT}")
    offsets = np.asarray(prepared.offsets, dtype=np.int64)
    if nwin != offsets.size - 1 or layout != layout_digest(prepared):
        raise AdjointStoreError(f"adjoint store {path} holds {nwin} windows of another "
                                f"measurement than the frozen one of event {prepared.event.name} "
                                f"({offsets.size - 1} windows)")
    adj = np.zeros(int(offsets[-1]))
    lengths = np.diff(offsets)
    mask = np.zeros(nwin, dtype=bool)
    mask[kept] = True
    where = np.repeat(mask, lengths)
    if int(where.sum()) != samples.size:
        raise AdjointStoreError(f"adjoint store {path}: {samples.size} samples for kept windows "
                                f"of {int(where.sum())}")
    adj[where] = samples
    return adj


def recombine(path: str | os.PathLike, prepared: PreparedEvent, wc: dict[str, float]
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Σ_c W_c · (adjoint of category c) per station with the categorical weights `wc` (eq. 3),
    from the store: (adjoint (3, npts) N, E, Z per station, solver time axes)."""
    adjoint = prepared.adjoint_sources(read_adjoint_store(path, prepared), wc)
    return adjoint, {code: prepared.solver_times[code] for code in adjoint}
