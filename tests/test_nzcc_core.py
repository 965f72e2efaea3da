"""Finite-difference check of the exact NZCC adjoint (SPEC §4) on a smooth synthetic pair."""
import numpy as np
from scipy.signal.windows import tukey

from seisflows_eara.misfit import nzcc, nzcc_misfit_and_adjoint


def _pair(n=800, dt=0.1):
    t = np.arange(n) * dt
    s = np.exp(-((t - 40) / 6) ** 2) * np.sin(2 * np.pi * t / 12)
    u = 0.7 * np.exp(-((t - 41.5) / 6) ** 2) * np.sin(2 * np.pi * (t - 1.5) / 12)
    return s, u, dt


def test_adjoint_matches_central_differences():
    s, u, dt = _pair()
    w = tukey(s.size, 0.2)
    chi, adj = nzcc_misfit_and_adjoint(s, u, w, dt)
    rng = np.random.default_rng(0)
    ds = rng.standard_normal(s.size) * 1e-6
    h = 1.0
    fd = (nzcc_misfit_and_adjoint(s + h * ds, u, w, dt)[0]
          - nzcc_misfit_and_adjoint(s - h * ds, u, w, dt)[0]) / (2 * h)
    an = np.sum(adj * ds) * dt
    assert abs(fd - an) / abs(an) < 1e-6
    assert np.isclose(chi, 1 - nzcc(s, u, w, dt))


def test_printed_adjoint_is_wrong():
    """The paper's eq. (4)-(5) amplitude A = ∫s∫u/∫u² fails the same check (SPEC §4)."""
    s, u, dt = _pair()
    ss, uu = np.sum(s * s) * dt, np.sum(u * u) * dt
    printed = ((np.sum(s) * np.sum(u) * dt * dt / uu) * s - u) / np.sqrt(ss * uu)
    _, exact = nzcc_misfit_and_adjoint(s, u, None, dt)
    assert np.linalg.norm(printed - exact) / np.linalg.norm(exact) > 0.1


def test_zero_energy_window_is_nan_with_zero_adjoint():
    s, u, dt = _pair()
    chi, adj = nzcc_misfit_and_adjoint(np.zeros_like(s), u, None, dt)
    assert np.isnan(chi) and not adj.any()


def test_broadcasts_over_windows():
    s, u, dt = _pair()
    S, U = np.stack([s, 2 * s, u]), np.stack([u, u, u])
    chi, adj = nzcc_misfit_and_adjoint(S, U, None, dt)
    assert chi.shape == (3,) and adj.shape == S.shape
    assert np.isclose(chi[0], chi[1]) and abs(chi[2]) < 1e-12
