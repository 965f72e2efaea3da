"""EARA model parametrization (SPEC §6, paper §2.2).

Inverted parameters, as relative perturbations x = (m − m_ref)/m_ref from STW105:
  above `tiso_max_depth` (crust and upper mantle, transversely isotropic): vc, vsv, vsh, eta
      (Vc = bulk sound speed, c² = κ/ρ with κ = ρ(vpv² − 4/3 vsv²) as in SPECFEM's kernels);
  below (lower mantle, isotropic): vp, vs.
Density is not free: δlnρ = s δlnVs (s = density_scaling), Vs² = (2 vsv² + vsh²)/3 (Voigt).
One set of arrays covers every point: vc/vsv/vsh/eta carry the TISO points, vp/vs the isotropic
ones (zero elsewhere), so a field dict is the optimization vector.

Kernels are SPECFEM3D_GLOBE's transversely isotropic kernels (SAVE_TRANSVERSE_KL_ONLY; save_kernels.f90,
after Sieminski et al. 2007): δχ = ∫ Σ K_m δln m dV for (bulk_c, bulk_betav, bulk_betah, eta, rho)
with κ isotropic, and (alphav, alphah, betav, betah, eta, rho). The gradient returned is the kernel
density with respect to x (chain rule, density scaling folded in).
"""
from __future__ import annotations

import numpy as np

from seisflows_eara.model.reference import stw105_at

TISO = ("vc", "vsv", "vsh", "eta")
ISO = ("vp", "vs")
INVERTED = TISO + ISO
MODEL_FILES = ("vpv", "vph", "vsv", "vsh", "eta", "rho")
KERNELS_TISO = ("bulk_c", "bulk_betav", "bulk_betah", "eta", "rho")
KERNELS_ISO = ("alphav", "alphah", "betav", "betah", "rho")


def tiso_mask(depth_km: np.ndarray, tiso_max_depth: float) -> np.ndarray:
    return depth_km < tiso_max_depth


def reference(radius_km: np.ndarray, side_radius: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """STW105 on the points, with the derived vc, vs, vp (Voigt) of the reference."""
    ref = stw105_at(radius_km, side_radius)
    return {**ref, **derived(ref)}


def derived(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """vc (from vpv, vsv), Voigt vs and vp."""
    vc2 = m["vpv"] ** 2 - 4.0 / 3.0 * m["vsv"] ** 2
    return {"vc": np.sqrt(np.maximum(vc2, 0.0)),
            "vs": np.sqrt((2 * m["vsv"] ** 2 + m["vsh"] ** 2) / 3.0),
            "vp": np.sqrt((m["vpv"] ** 2 + 4 * m["vph"] ** 2) / 5.0)}


def to_perturbation(model: dict[str, np.ndarray], ref: dict[str, np.ndarray],
                    tiso: np.ndarray) -> dict[str, np.ndarray]:
    """x for every inverted parameter (zero where the parameter does not apply)."""
    cur = {**model, **derived(model)}
    x = {}
    for name in INVERTED:
        on = tiso if name in TISO else ~tiso
        x[name] = np.where(on, (cur[name] - ref[name]) / ref[name], 0.0)
    return x


def update_model(model: dict[str, np.ndarray], dx: dict[str, np.ndarray], ref: dict[str, np.ndarray],
                 tiso: np.ndarray, density_scaling: float) -> dict[str, np.ndarray]:
    """The model after the perturbation change dx (x_new = x + dx), as SPECFEM GLL fields.

    TISO points: vsv, vsh, eta, vc from x; vpv² and vph² change by Δ(vc²) + 4/3 Δ(vs{v,h}²), which
    keeps the reference's κ_h − κ_v offset (a zero update is the identity). Isotropic points: vp, vs
    scale vpv = vph and vsv = vsh. Density: Δx_ρ = s Δx_Vs (Voigt Vs)."""
    cur = {**model, **derived(model)}
    new = {k: np.array(v, float, copy=True) for k, v in model.items()}
    t, i = tiso, ~tiso
    vsv = cur["vsv"] + ref["vsv"] * dx["vsv"]
    vsh = cur["vsh"] + ref["vsh"] * dx["vsh"]
    vc = cur["vc"] + ref["vc"] * dx["vc"]
    eta = cur["eta"] + ref["eta"] * dx["eta"]
    dvc2 = vc ** 2 - cur["vc"] ** 2
    new["vsv"][t], new["vsh"][t], new["eta"][t] = vsv[t], vsh[t], eta[t]
    new["vpv"][t] = np.sqrt(cur["vpv"][t] ** 2 + dvc2[t] + 4 / 3 * (vsv[t] ** 2 - cur["vsv"][t] ** 2))
    new["vph"][t] = np.sqrt(cur["vph"][t] ** 2 + dvc2[t] + 4 / 3 * (vsh[t] ** 2 - cur["vsh"][t] ** 2))
    fp = (cur["vp"] + ref["vp"] * dx["vp"]) / cur["vp"]
    fs = (cur["vs"] + ref["vs"] * dx["vs"]) / cur["vs"]
    for k in ("vpv", "vph"):
        new[k][i] = cur[k][i] * fp[i]
    for k in ("vsv", "vsh"):
        new[k][i] = cur[k][i] * fs[i]
    vs_new = derived(new)["vs"]
    dxs = (vs_new - cur["vs"]) / ref["vs"]
    new["rho"] = cur["rho"] + ref["rho"] * density_scaling * dxs
    return new


def kernels_to_gradient(k: dict[str, np.ndarray], model: dict[str, np.ndarray],
                        ref: dict[str, np.ndarray], tiso: np.ndarray,
                        density_scaling: float) -> dict[str, np.ndarray]:
    """∂χ/∂x (per unit volume) from SPECFEM's TISO kernels, by the chain rule.

    TISO points (bulk parametrization): ∂ln vc/∂x_vc = vc_ref/vc, etc.; the density term
    K_ρ δlnρ with δlnρ = (ρ_ref/ρ) s δx_Vs and δx_Vs = (2 vsv vsv_ref δx_vsv + vsh vsh_ref δx_vsh)
    / (3 Vs Vs_ref). Isotropic points: K_vp = K_αv + K_αh, K_vs = K_βv + K_βh (isotropic model:
    δln vpv = δln vph = δln vp), density likewise with δx_Vs = δx_vs."""
    cur = {**model, **derived(model)}
    rho_fac = ref["rho"] / cur["rho"] * density_scaling * k["rho"]
    dxs_dvsv = 2 * cur["vsv"] * ref["vsv"] / (3 * cur["vs"] * ref["vs"])
    dxs_dvsh = cur["vsh"] * ref["vsh"] / (3 * cur["vs"] * ref["vs"])
    t, i = tiso, ~tiso
    g = {name: np.zeros_like(cur["vsv"], dtype=float) for name in INVERTED}
    g["vc"][t] = (k["bulk_c"] * ref["vc"] / cur["vc"])[t]
    g["vsv"][t] = (k["bulk_betav"] * ref["vsv"] / cur["vsv"] + rho_fac * dxs_dvsv)[t]
    g["vsh"][t] = (k["bulk_betah"] * ref["vsh"] / cur["vsh"] + rho_fac * dxs_dvsh)[t]
    g["eta"][t] = (k["eta"] * ref["eta"] / cur["eta"])[t]
    g["vp"][i] = ((k["alphav"] + k["alphah"]) * ref["vp"] / cur["vp"])[i]
    g["vs"][i] = ((k["betav"] + k["betah"]) * ref["vs"] / cur["vs"] + rho_fac)[i]
    return g
