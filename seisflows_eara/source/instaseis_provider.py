"""Synthetics and source derivatives from real Green's-function databases, without SPECFEM.

instaseis (PyPI) reads AxiSEM's reciprocal databases: for a receiver at the surface it stores the
strain (or displacement) field at every possible source point, so a seismogram for any moment tensor
M is M : ε†(x_s) convolved with the database's source time function (reciprocity). This module
answers the two questions a SPECFEM run answers for the source inversion (SPEC §5), in SPECFEM's
conventions:
  * synthetics(source, stations): N, E, Z displacement (m), `NET.STA..MX?`, time zero at the
    centroid time (CMTSOLUTION origin time + time shift), like `*.sem.ascii`;
  * frechet(source, stations, adjoint): the src_frechet numbers of a SIMULATION_TYPE = 2 run driven
    by the adjoint sources f†:  ∂χ/∂p = Σ_r ∫ f†_r(t) · ∂s_r/∂p(t) dt  with
      ∂s/∂M_k   the seismogram of a unit (1 dyne·cm) independent component k — strain Green's
                functions through reciprocity, exact (s is linear in M);
      ∂s/∂x_i   central differences of s over ±h m east, north, down (same CMTSOLUTION components
                at the moved centroid, as the update moves it; SPECFEM holds the Cartesian tensor
                fixed instead: the two differ by O(1/(kR)), ~1 % at 100 s, ~0.1 % at 10 s);
      ∂s/∂t0    −∂s/∂t (instaseis velocity): the whole source delayed.
Positions are placed as SPECFEM places them (geocentric latitude with its flattening 1/299.8).
The databases in ../shared/fixtures/instaseis_prem_100s hold periods ≳ 50 s, sources 0-~370 km.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np
from obspy import Stream, Trace

from seisflows_eara.io.cmtsolution import CMTSource
from seisflows_eara.io.stations import Station
from seisflows_eara.kernels.damping import SPECFEM_FLATTENING, geocentric_latitude
from seisflows_eara.source.frechet import SourceGradient
from seisflows_eara.source.gradient import M_PER_KM, move_centroid

#: 1 dyne·cm in N·m (CMTSOLUTION moment-tensor unit -> instaseis unit)
DYNE_CM = 1e-7
#: SPECFEM's component order of synthetics and adjoint sources in this project
COMPONENTS = "NEZ"


class InstaseisProvider:
    """Forward and source-derivative 'simulations' from one reciprocal instaseis database.

    db_path: database folder; dt: output sampling interval (s); location_step_m: h of the central
    differences in location (m)."""

    def __init__(self, db_path: str | os.PathLike, dt: float, location_step_m: float):
        import instaseis
        self._instaseis = instaseis
        try:
            self.db = instaseis.open_db(os.fspath(db_path))
        except Exception as e:
            raise ValueError(f"cannot open instaseis database {os.fspath(db_path)}: {e}") from e
        if not self.db.info.is_reciprocal:
            raise ValueError(f"{os.fspath(db_path)}: a reciprocal (receiver-side) database is needed "
                             "for sources at any depth and receivers at the surface")
        self.dt = float(dt)
        self.h = float(location_step_m)
        self.max_depth_km = (self.db.info.planet_radius - self.db.info.min_radius) / M_PER_KM

    # ------------------------------------------------------------------ instaseis objects
    def _check(self, source: CMTSource, derivatives: bool = False) -> None:
        if derivatives and source.depth < self.h / M_PER_KM:
            raise ValueError(f"event {source.event_name}: depth {source.depth} km is shallower than "
                             f"the location step {self.h} m of the derivatives")
        if source.depth + self.h / M_PER_KM > self.max_depth_km:
            raise ValueError(f"event {source.event_name}: depth {source.depth} km is below the "
                             f"database's deepest source ({self.max_depth_km:.0f} km)")

    def _source(self, source: CMTSource, moment: np.ndarray | None = None,
                offset_m: Iterable[float] = (0.0, 0.0, 0.0)):
        """instaseis.Source at the centroid (moved by (east, north, down) m) with `moment`
        (dyne·cm, default the CMT's), origin at the centroid time."""
        de, dn, dz = offset_m
        lat, lon, depth = move_centroid(source.latitude, source.longitude, source.depth, de, dn, dz)
        m = source.moment_tensor if moment is None else np.asarray(moment, float)
        m = m * DYNE_CM
        return self._instaseis.Source(
            latitude=float(geocentric_latitude(lat, SPECFEM_FLATTENING)), longitude=lon,
            depth_in_m=depth * M_PER_KM, m_rr=m[0], m_tt=m[1], m_pp=m[2], m_rt=m[3], m_rp=m[4],
            m_tp=m[5], origin_time=source.centroid_time)

    def _receiver(self, st: Station):
        return self._instaseis.Receiver(latitude=float(geocentric_latitude(st.latitude,
                                                                           SPECFEM_FLATTENING)),
                                        longitude=st.longitude)

    def _traces(self, isrc, rec, kind: str = "displacement") -> tuple[np.ndarray, object]:
        """(3, npts) N, E, Z and the start time (centroid time − the database's source shift)."""
        st = self.db.get_seismograms(source=isrc, receiver=rec, components="NEZ", kind=kind,
                                     dt=self.dt, remove_source_shift=False)
        return np.array([st.select(component=c)[0].data for c in COMPONENTS], float), \
            st[0].stats.starttime

    # ------------------------------------------------------------------ public
    def synthetics(self, source: CMTSource, stations: list[Station]) -> Stream:
        """Displacement N, E, Z (m) for `source` at `stations`, channels MXN/MXE/MXZ."""
        self._check(source)
        isrc = self._source(source)
        out = Stream()
        for st in stations:
            data, t0 = self._traces(isrc, self._receiver(st))
            for c, d in zip(COMPONENTS, data):
                out += Trace(d, header=dict(network=st.network, station=st.station,
                                            channel=f"MX{c}", starttime=t0, delta=self.dt))
        return out

    def derivatives(self, source: CMTSource, station: Station) -> np.ndarray:
        """(10, 3, npts) ∂s/∂p for p = Mrr … Mtp (per dyne·cm), east, north, depth (per m), time
        shift (per s), components N, E, Z on the synthetics' samples."""
        self._check(source, derivatives=True)
        rec = self._receiver(station)
        rows = []
        for k in range(6):
            unit = np.zeros(6)
            unit[k] = 1.0
            rows.append(self._traces(self._source(source, unit), rec)[0])
        for axis in range(3):
            step = np.zeros(3)
            step[axis] = self.h
            plus = self._traces(self._source(source, offset_m=step), rec)[0]
            minus = self._traces(self._source(source, offset_m=-step), rec)[0]
            rows.append((plus - minus) / (2.0 * self.h))
        rows.append(-self._traces(self._source(source), rec, kind="velocity")[0])
        n = min(r.shape[1] for r in rows)
        return np.stack([r[:, :n] for r in rows])

    def frechet(self, source: CMTSource, stations: list[Station], adjoint: dict[str, np.ndarray],
                adjoint_times: dict[str, np.ndarray]) -> SourceGradient:
        """The src_frechet of an adjoint run with adjoint sources `adjoint` ("NET.STA" -> (3, npts)
        N, E, Z on the synthetics' time axis, as measure_event returns them): Σ_r ∫ f†·∂s/∂p dt."""
        g = np.zeros(10)
        by_code = {s.code: s for s in stations}
        for code, adj in adjoint.items():
            if code not in by_code:
                raise ValueError(f"event {source.event_name}: adjoint source for {code}, which is "
                                 "not among the stations")
            der = self.derivatives(source, by_code[code])
            times = adjoint_times[code]
            n = min(der.shape[2], adj.shape[1])
            if adj.shape[1] != der.shape[2]:
                raise ValueError(f"event {source.event_name}, {code}: adjoint source has "
                                 f"{adj.shape[1]} samples, synthetics {der.shape[2]}")
            dt = float(times[1] - times[0])
            g += np.einsum("pct,ct->p", der[:, :, :n], adj[:, :n]) * dt
        return SourceGradient(g[:6], g[6:9], float(g[9]), None, f"instaseis:{self.db.db_path}")
