"""SIMULATION_TYPE = 2 of the stand-in: source Fréchet derivatives of the toy physics, written as
SPECFEM3D_GLOBE writes OUTPUT_FILES/src_frechet.000001 (seisflows_eara.source.frechet documents the
layout: 6 moment derivatives per dyne·cm, east/north/depth per metre, time shift per s, half
duration; SPECFEM's transposed rotation of the tensor and location block included).

The derivatives are exact adjoint contractions of the toy's own synthetics u(M, x, t):
    ∂χ/∂M_k = Σ_r ∫ f†_r · ∂u_r/∂M_k dt    (u is linear in the six CMTSOLUTION numbers),
    ∂χ/∂x_i = Σ_r ∫ f†_r · ∂u_r/∂x_i dt    (∂u/∂x_i by a centred difference of the toy, ±H_M),
    ∂χ/∂t_s = −Σ_r ∫ f†_r · ∂_t u_r dt,
with f† the adjoint sources in SEM/ (the ones the workflow wrote for this event).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: metres of the centred difference for the location derivatives
H_M = 200.0
#: dyne·cm per N·m (the toy works in N·m, SPECFEM's derivatives are per dyne·cm)
DYNE_CM_PER_NM = 1.0e7


def _contract(toy, read_adjoint, dt: float, syn: dict) -> float:
    return float(sum(np.sum(read_adjoint(net, sta, toy.t.size) * u) * dt
                     for (net, sta), u in syn.items()))


def source_derivatives(Toy, read_adjoint, dt: float) -> None:
    from seisflows_eara.io.cmtsolution import read_cmtsolution
    from seisflows_eara.source.frechet import SourceGradient, format_src_frechet

    toy = Toy()
    m0 = toy.m6.copy()
    moment = np.zeros(6)
    for k in range(6):                       # u linear in M: the synthetics of a unit component
        toy.m6 = np.eye(6)[k]
        moment[k] = _contract(toy, read_adjoint, dt, toy.seismograms()[0]) / DYNE_CM_PER_NM
    toy.m6 = m0
    lat0, lon0, dep0 = toy.src_lat, toy.src_lon, toy.src_dep
    r = (6371.0 - dep0) * 1000.0
    location = np.zeros(3)
    for i in range(3):                       # east, north, depth (m)
        chi = []
        for sign in (1.0, -1.0):
            h = sign * H_M
            toy.src_lat = lat0 + (np.degrees(h / r) if i == 1 else 0.0)
            toy.src_lon = lon0 + (np.degrees(h / (r * np.cos(np.radians(lat0)))) if i == 0 else 0.0)
            toy.src_dep = dep0 + (h / 1000.0 if i == 2 else 0.0)
            chi.append(_contract(toy, read_adjoint, dt, toy.seismograms()[0]))
        location[i] = (chi[0] - chi[1]) / (2.0 * H_M)
    toy.src_lat, toy.src_lon, toy.src_dep = lat0, lon0, dep0
    syn = toy.seismograms()[0]
    time_shift = -_contract(toy, read_adjoint, dt, {k: np.gradient(u, dt, axis=1)
                                                    for k, u in syn.items()})
    gradient = SourceGradient(moment, location, time_shift, 0.0)
    text = format_src_frechet(gradient, read_cmtsolution("DATA/CMTSOLUTION"), frame="corrected")
    Path("OUTPUT_FILES").mkdir(exist_ok=True)
    Path("OUTPUT_FILES/src_frechet.000001").write_text(text)
