"""Adjoint-part storage per station per forward, before and after the compact store (issue 18 (d)).

Real data: the raw IU.KBL record (Darfield 2010, 40 sps, 105 min, counts) and its StationXML
replicated to N stations with the KBL SPECFEM3D_GLOBE synthetic (benchmarks/bench_measure.py's
replicas), prepared once (measure.prepare_event) and measured as a forward does. Written both ways:
  before  <event>.adjoint_parts.pkl as the plugin wrote it: (adjoint_by_category, adjoint_times),
          full (3, npts) arrays per category and station on the solver's time axis
  after   <event>.adjoint_windows.npz (measure.adjoint_store): the windows' weighted adjoint
          samples, placed by the frozen measurement pickled beside it anyway
and the kernel step's recombination from the store is checked bit for bit against the full arrays.

Run: python benchmarks/bench_storage.py [--stations 50] [--json F]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")      # one core, before numpy/scipy load

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_measure import _replicas  # noqa: E402

from seisflows_eara import params  # noqa: E402
from seisflows_eara.measure import (Config, combine_adjoint, measure_event,  # noqa: E402
                                    observed_parameters, prepare_event, read_prepared)
from seisflows_eara.measure.adjoint_store import recombine, write_adjoint_store  # noqa: E402

#: the paper's run (Xi et al. 2024): events, stations, and measured forwards per event of the
#: default schedule (3 stages of 3 source + 10 structure iterations, + the final forward)
EVENTS, STATIONS = 142, 2000


def storage_figures(nsta: int = 50, tmp: str | None = None) -> dict:
    """`storage.bytes_per_station_before` / `_after` (bytes per station per measured forward) and
    the figures around them, measured on `nsta` replicated real KBL stations."""
    ev, stations, by, inv, syn = _replicas(nsta)
    cfg = Config(params.defaults(), 1)
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        h5 = os.path.join(d, "prepared.h5")
        prepare_event(ev, stations, by, cfg, h5, inventory=inv)
        m = measure_event(ev, stations, {}, syn, cfg,
                          prepared=read_prepared(h5, observed_parameters(cfg, event=ev,
                                                                         stations=stations)))
        old = os.path.join(d, "event.adjoint_parts.pkl")
        t = time.perf_counter()
        with open(old, "wb") as f:
            pickle.dump((m.adjoint_by_category, m.adjoint_times), f)
        t_old = time.perf_counter() - t
        store = os.path.join(d, "event.adjoint_windows.npz")
        t = time.perf_counter()
        write_adjoint_store(store, m.prepared, m.adjoint_windows)
        t_new = time.perf_counter() - t
        frozen = len(pickle.dumps(m.prepared))
        wc = {c: 1.0 / (i + 2.7) for i, c in enumerate(sorted(m.adjoint_by_category))}
        t = time.perf_counter()
        a_new, _ = recombine(store, m.prepared, wc)
        t_rec = time.perf_counter() - t
        a_old, _ = combine_adjoint(m.adjoint_by_category, wc, m.adjoint_times)
        same = a_new.keys() == a_old.keys() and all(np.array_equal(a_new[k], a_old[k])
                                                    for k in a_old)
        before, after = os.path.getsize(old) / nsta, os.path.getsize(store) / nsta
    measured = sum(1 for s in __import__("seisflows_eara.schedule", fromlist=["plan"]).plan(
        params.defaults()) if s.task in ("forward", "final_forward"))
    return {"storage.stations": nsta, "storage.windows": int(m.prepared.nwin),
            "storage.bytes_per_station_before": before,
            "storage.bytes_per_station_after": after, "storage.ratio": after / before,
            "storage.frozen_bytes_per_station": frozen / nsta,
            "storage.write_s_before": t_old, "storage.write_s_after": t_new,
            "storage.recombine_s": t_rec, "storage.bit_identical": bool(same),
            "storage.measured_forwards": measured,
            "extrapolated.storage_bytes_before_142x2000_per_forward": before * EVENTS * STATIONS,
            "extrapolated.storage_bytes_after_142x2000_per_forward": after * EVENTS * STATIONS,
            "extrapolated.storage_bytes_before_142x2000_run": before * EVENTS * STATIONS * measured,
            "extrapolated.storage_bytes_after_142x2000_run": after * EVENTS * STATIONS * measured}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"))
    a = ap.parse_args()
    r = storage_figures(a.stations, a.tmp)
    print(f"Adjoint parts per station per forward, {r['storage.stations']} replicated raw KBL "
          f"stations ({r['storage.windows']} windows):")
    print(f"  before (full arrays, adjoint_parts.pkl) {r['storage.bytes_per_station_before'] / 1e6:.2f}"
          f" MB, after (compact store) {r['storage.bytes_per_station_after'] / 1e6:.3f} MB -> "
          f"ratio {r['storage.ratio']:.3f} (1/{1 / r['storage.ratio']:.0f}; goal <= 1/10); "
          f"recombined bit-identical: {r['storage.bit_identical']}")
    print(f"  142 x 2000: {r['extrapolated.storage_bytes_before_142x2000_per_forward'] / 1e12:.2f} TB"
          f" -> {r['extrapolated.storage_bytes_after_142x2000_per_forward'] / 1e12:.3f} TB per "
          f"measured forward; over the {r['storage.measured_forwards']} measured forwards of the "
          f"schedule {r['extrapolated.storage_bytes_before_142x2000_run'] / 1e12:.0f} TB -> "
          f"{r['extrapolated.storage_bytes_after_142x2000_run'] / 1e12:.1f} TB "
          f"(frozen measurement beside it: {r['storage.frozen_bytes_per_station'] / 1e6:.2f} MB "
          "per station, written before too)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
