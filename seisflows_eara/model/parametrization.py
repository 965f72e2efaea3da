"""EARA model parametrization (SPEC §6, paper §2.2).

Inverted parameters: relative perturbations x = (m − m_ref)/m_ref from STW105 (`reference`),
  TISO points (element centre shallower than `tiso_max_depth`, crust and upper mantle):
      vc, vsv, vsh, eta   with the bulk sound speed vc² = κ_v/ρ = vpv² − 4/3 vsv²;
  isotropic points (below): vp, vs (Voigt averages vp² = (vpv² + 4 vph²)/5, vs² = (2 vsv² + vsh²)/3).
One dict of arrays over all points is the optimization vector: vc/vsv/vsh/eta are zero at the
isotropic points and vp/vs at the TISO points.

The model map (x -> SPECFEM's vpv, vph, vsv, vsh, eta, rho) needs the model quantities x does not
fix; an update keeps them:
  TISO:  vsv, vsh, eta, vc from x;  vpv² = vc² + 4/3 vsv²;  vph² = q vc² + 4/3 vsh² with q = κ_h/κ_v
         unchanged (a bulk-sound change scales κ_v and κ_h alike, as SPECFEM's add_model_tiso_cg).
  iso:   vpv, vph scaled by vp_new/vp, vsv, vsh by vs_new/vs (η unchanged).
  ρ:     density is not inverted: Δ[(ρ − ρ_ref)/ρ_ref] = s Δ[(Vs − Vs_ref)/Vs_ref] (Voigt Vs),
         s = density_scaling (δlnρ = 0.33 δlnVs).
Updates compose (m(x + a + b) = update(update(m, a), b)), so the model is a function of x.

Kernels: SPECFEM3D_GLOBE with ANISOTROPIC_KL + SAVE_TRANSVERSE_KL_ONLY (save_kernels.F90,
save_kernels_crust_mantle; Sieminski et al. 2007 App. B) writes δχ = ∫ Σ K_m δln m dV for
m = (vpv, vph, vsv, vsh, eta, rho) — files alphav, alphah, betav, betah, eta, rho: each at fixed
others (rho = ρ' at fixed velocities) — and the bulk kernels bulk_c, bulk_betav, bulk_betah.
Those bulk kernels use α_h² = (κ_v + 4/3 μ_h)/ρ, so they are the chain rule of the map above only
where κ_h = κ_v (q = 1; every isotropic element). The gradient here is therefore built from the
six primary kernels, exact for any q; it equals SPECFEM's bulk kernels where q = 1:
  K_vc  = (vc²/vpv²) K_αv + (q vc²/vph²) K_αh,   K_vsv = K_βv + (4/3 vsv²/vpv²) K_αv,
  K_vsh = K_βh + (4/3 vsh²/vph²) K_αh,           K_vp = K_αv + K_αh,   K_vs = K_βv + K_βh,
  g_p = K_p m_ref/m (∂ln m/∂x) + s (ρ_ref/ρ) K_ρ ∂x_Vs/∂x_p      (density term for vsv, vsh, vs;
  ∂x_Vs/∂x_vsv = 2 vsv vsv_ref/(3 Vs Vs_ref), ∂x_Vs/∂x_vsh = vsh vsh_ref/(3 Vs Vs_ref), ∂x_Vs/∂x_vs = 1).
Gradients are kernel densities (per km³, as SPECFEM's): the derivative with respect to x at a GLL
point is g times that point's volume (Mesh.volume).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from seisflows_eara.model.mesh import Mesh
from seisflows_eara.model.reference import stw105_at

TISO = ("vc", "vsv", "vsh", "eta")
ISO = ("vp", "vs")
INVERTED = TISO + ISO
MODEL_FILES = ("vpv", "vph", "vsv", "vsh", "eta", "rho")
#: SPECFEM kernel files the gradient is built from (SAVE_TRANSVERSE_KL_ONLY)
KERNEL_FILES = ("alphav", "alphah", "betav", "betah", "eta", "rho")
KERNELS_TISO = KERNEL_FILES
KERNELS_ISO = KERNEL_FILES
#: SPECFEM's bulk kernels of the same run (equal to our chain rule where κ_h = κ_v)
KERNELS_BULK = ("bulk_c", "bulk_betav", "bulk_betah")


# ---------------------------------------------------------------------------- array level
def tiso_mask(depth_km: np.ndarray, tiso_max_depth: float) -> np.ndarray:
    """Points inverted as transversely isotropic: depth (use the element-centre depth,
    Mesh.element_depth, so an element is never split) shallower than `tiso_max_depth`."""
    return np.asarray(depth_km) < tiso_max_depth


def reference(radius_km: np.ndarray, side_radius: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """STW105 on the points (side of discontinuities by `side_radius`) with its vc, vs, vp."""
    ref = stw105_at(radius_km, side_radius)
    return {**ref, **derived(ref)}


def derived(m: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """vc = sqrt(vpv² − 4/3 vsv²), Voigt vs and vp, and q = κ_h/κ_v (1 where κ_v = 0)."""
    vc2 = m["vpv"] ** 2 - 4.0 / 3.0 * m["vsv"] ** 2
    kh2 = m["vph"] ** 2 - 4.0 / 3.0 * m["vsh"] ** 2
    return {"vc": np.sqrt(np.maximum(vc2, 0.0)),
            "vs": np.sqrt((2 * m["vsv"] ** 2 + m["vsh"] ** 2) / 3.0),
            "vp": np.sqrt((m["vpv"] ** 2 + 4 * m["vph"] ** 2) / 5.0),
            "q": np.divide(kh2, vc2, out=np.ones_like(vc2, dtype=float), where=vc2 > 0)}


def _as_arrays(model: Mapping[str, Any], names=MODEL_FILES) -> dict[str, np.ndarray]:
    """float64 arrays (per-process lists are concatenated); names all present."""
    missing = [k for k in names if k not in model]
    if missing:
        raise KeyError(f"model has no {missing} (has {sorted(model)})")
    return {k: (np.concatenate([np.asarray(a, float) for a in model[k]])
                if isinstance(model[k], (list, tuple)) else np.asarray(model[k], float))
            for k in names}


def _check(model: dict[str, np.ndarray], what: str) -> None:
    n = {k: v.size for k, v in model.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"{what}: fields have different sizes {n}")
    bad = {k: int(np.sum(~(v > 0))) for k, v in model.items() if np.any(~(v > 0))}
    if bad:
        raise ValueError(f"{what}: non-positive or non-finite values at {bad} points")
    if np.any(model["vpv"] ** 2 <= 4.0 / 3.0 * model["vsv"] ** 2):
        raise ValueError(f"{what}: vpv² ≤ 4/3 vsv² (no bulk modulus) at "
                         f"{int(np.sum(model['vpv'] ** 2 <= 4 / 3 * model['vsv'] ** 2))} points")


def to_perturbation(model: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray],
                    tiso: np.ndarray) -> dict[str, np.ndarray]:
    """x for every inverted parameter (zero where the parameter does not apply)."""
    cur = _as_arrays(model)
    cur.update(derived(cur))
    return {name: np.where(tiso if name in TISO else ~tiso, (cur[name] - ref[name]) / ref[name], 0.0)
            for name in INVERTED}


def update_model(model: Mapping[str, np.ndarray], dx: Mapping[str, np.ndarray],
                 ref: Mapping[str, np.ndarray], tiso: np.ndarray,
                 density_scaling: float) -> dict[str, np.ndarray]:
    """SPECFEM GLL fields of the model after x -> x + dx (the map in the module doc)."""
    cur = _as_arrays(model)
    _check(cur, "current model")
    cur.update(derived(cur))
    dx = {k: np.where(tiso if k in TISO else ~tiso, np.asarray(dx[k], float), 0.0) for k in INVERTED}
    t, i = tiso, ~tiso
    new = {k: cur[k].copy() for k in MODEL_FILES}
    vsv = cur["vsv"] + ref["vsv"] * dx["vsv"]
    vsh = cur["vsh"] + ref["vsh"] * dx["vsh"]
    vc = cur["vc"] + ref["vc"] * dx["vc"]
    new["vsv"][t], new["vsh"][t] = vsv[t], vsh[t]
    new["eta"][t] = (cur["eta"] + ref["eta"] * dx["eta"])[t]
    new["vpv"][t] = np.sqrt(vc ** 2 + 4.0 / 3.0 * vsv ** 2)[t]
    new["vph"][t] = np.sqrt(cur["q"] * vc ** 2 + 4.0 / 3.0 * vsh ** 2)[t]
    fp = 1.0 + ref["vp"] * dx["vp"] / cur["vp"]
    fs = 1.0 + ref["vs"] * dx["vs"] / cur["vs"]
    for k in ("vpv", "vph"):
        new[k][i] = (cur[k] * fp)[i]
    for k in ("vsv", "vsh"):
        new[k][i] = (cur[k] * fs)[i]
    dxs = (derived(new)["vs"] - cur["vs"]) / ref["vs"]
    new["rho"] = cur["rho"] + ref["rho"] * density_scaling * dxs
    _check(new, "updated model")
    return new


def gradient_from_kernels(k: Mapping[str, np.ndarray], model: Mapping[str, np.ndarray],
                          ref: Mapping[str, np.ndarray], tiso: np.ndarray,
                          density_scaling: float) -> dict[str, np.ndarray]:
    """∂χ/∂x (kernel density) from SPECFEM's primary TISO kernels (module doc)."""
    kk = _as_arrays(k, KERNEL_FILES)
    cur = _as_arrays(model)
    cur.update(derived(cur))
    vpv2, vph2, vc2 = cur["vpv"] ** 2, cur["vph"] ** 2, cur["vc"] ** 2
    vs_ref_vs = 3.0 * cur["vs"] * ref["vs"]
    krho = density_scaling * ref["rho"] / cur["rho"] * kk["rho"]       # per unit Δx_Vs
    t, i = tiso, ~tiso
    k_vc = vc2 / vpv2 * kk["alphav"] + cur["q"] * vc2 / vph2 * kk["alphah"]
    k_vsv = kk["betav"] + 4.0 / 3.0 * cur["vsv"] ** 2 / vpv2 * kk["alphav"]
    k_vsh = kk["betah"] + 4.0 / 3.0 * cur["vsh"] ** 2 / vph2 * kk["alphah"]
    g = {name: np.zeros(vc2.shape) for name in INVERTED}
    g["vc"][t] = (k_vc * ref["vc"] / cur["vc"])[t]
    g["vsv"][t] = (k_vsv * ref["vsv"] / cur["vsv"] + krho * 2 * cur["vsv"] * ref["vsv"] / vs_ref_vs)[t]
    g["vsh"][t] = (k_vsh * ref["vsh"] / cur["vsh"] + krho * cur["vsh"] * ref["vsh"] / vs_ref_vs)[t]
    g["eta"][t] = (kk["eta"] * ref["eta"] / cur["eta"])[t]
    g["vp"][i] = ((kk["alphav"] + kk["alphah"]) * ref["vp"] / cur["vp"])[i]
    g["vs"][i] = ((kk["betav"] + kk["betah"]) * ref["vs"] / cur["vs"] + krho)[i]
    return g


def bulk_kernels(k: Mapping[str, np.ndarray], model: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """SPECFEM's bulk_c, bulk_betav, bulk_betah from the primary kernels, as save_kernels.F90
    computes them (κ_h taken equal to κ_v) — for checking files, not for the gradient."""
    kk, m = _as_arrays(k, KERNEL_FILES), _as_arrays(model)
    c2 = m["vpv"] ** 2 - 4.0 / 3.0 * m["vsv"] ** 2
    av2, ah2 = m["vpv"] ** 2, c2 + 4.0 / 3.0 * m["vsh"] ** 2
    return {"bulk_c": c2 / av2 * kk["alphav"] + c2 / ah2 * kk["alphah"],
            "bulk_betav": kk["betav"] + 4.0 / 3.0 * m["vsv"] ** 2 / av2 * kk["alphav"],
            "bulk_betah": kk["betah"] + 4.0 / 3.0 * m["vsh"] ** 2 / ah2 * kk["alphah"]}


# ----------------------------------------------------------------------------- mesh level
def _values(params: Mapping[str, Any], *keys: str) -> list:
    missing = [k for k in keys if k not in params]
    if missing:
        raise KeyError(f"parameters {missing} missing (seisflows_eara.params)")
    return [params[k] for k in keys]


def mesh_reference(mesh: Mesh) -> dict[str, np.ndarray]:
    """STW105 (and its vc, vs, vp) on the mesh points, element side on discontinuities."""
    return reference(mesh.radius_km, mesh.element_radius())


def mesh_tiso(mesh: Mesh, params: Mapping[str, Any]) -> np.ndarray:
    """TISO points of the mesh: element centre shallower than params['tiso_max_depth']."""
    (depth,) = _values(params, "tiso_max_depth")
    return tiso_mask(mesh.element_depth(), depth)


def model_to_perturbation(model: Mapping[str, Any], mesh: Mesh,
                          params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """x relative to STW105 of a GLL model on `mesh` (SPEC §6)."""
    return to_perturbation(model, mesh_reference(mesh), mesh_tiso(mesh, params))


def reference_model(mesh: Mesh) -> dict[str, np.ndarray]:
    """STW105 as SPECFEM GLL fields on the mesh (x = 0)."""
    ref = mesh_reference(mesh)
    return {k: ref[k] for k in MODEL_FILES}


def perturbation_to_model(x: Mapping[str, np.ndarray], mesh: Mesh, params: Mapping[str, Any],
                          base: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """GLL fields of perturbation x. What x does not fix (q = κ_h/κ_v, vph/vpv and vsh/vsv at
    isotropic points, density beyond its scaling, η below the TISO layer) comes from `base`
    (default STW105 itself): the model is update(base, x − x(base))."""
    scaling, = _values(params, "density_scaling")
    ref, tiso = mesh_reference(mesh), mesh_tiso(mesh, params)
    base = reference_model(mesh) if base is None else base
    x0 = to_perturbation(base, ref, tiso)
    return update_model(base, {k: np.asarray(x[k], float) - x0[k] for k in INVERTED}, ref, tiso, scaling)


def apply_update(model: Mapping[str, Any], direction: Mapping[str, np.ndarray], alpha: float,
                 mesh: Mesh, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model at x + α d (SPEC §6, eq. C1/C6), as GLL fields."""
    scaling, = _values(params, "density_scaling")
    return update_model(model, {k: alpha * np.asarray(direction[k], float) for k in INVERTED},
                        mesh_reference(mesh), mesh_tiso(mesh, params), scaling)


def kernels_to_gradient(kernels: Mapping[str, Any], model: Mapping[str, Any], mesh_or_ref,
                        params_or_tiso, density_scaling: float | None = None
                        ) -> dict[str, np.ndarray]:
    """∂χ/∂x (kernel density, per km³) from SPECFEM's TISO kernels at `model` (module doc).

    Call as (kernels, model, mesh, params) — reference and TISO points from the mesh — or as
    (kernels, model, ref, tiso, density_scaling) with the arrays given."""
    if isinstance(mesh_or_ref, Mesh):
        scaling, = _values(params_or_tiso, "density_scaling")
        return gradient_from_kernels(kernels, model, mesh_reference(mesh_or_ref),
                                     mesh_tiso(mesh_or_ref, params_or_tiso), scaling)
    if density_scaling is None:
        raise TypeError("kernels_to_gradient(kernels, model, ref, tiso, density_scaling): "
                        "density_scaling missing")
    return gradient_from_kernels(kernels, model, mesh_or_ref, np.asarray(params_or_tiso, bool),
                                 density_scaling)
