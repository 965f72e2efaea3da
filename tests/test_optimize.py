"""PR-CG with Powell restarts and the one-forward line search (SPEC §6, Appendix C)."""
import numpy as np
import pytest

from seisflows_eara.misfit import nzcc_misfit_and_adjoint
from seisflows_eara.optimize import OptimizerState, extrapolated_line_search, pr_direction
from seisflows_eara.optimize.pcg import dot


def _spd(n=12, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q @ np.diag(np.linspace(1, 30, n)) @ q.T, rng.standard_normal(n)


@pytest.mark.parametrize("precondition", [False, True])
def test_pr_cg_equals_analytic_cg_on_an_spd_quadratic(precondition):
    """f = x·A x/2 − b·x with exact line searches: PR-CG = (preconditioned) linear CG, and it
    reaches the minimum in n steps."""
    A, b = _spd()
    n = b.size
    P = np.diag(1 / np.diag(A)) if precondition else np.eye(n)
    x = np.zeros(n)
    prev = None
    # reference: textbook preconditioned CG
    xr, r = np.zeros(n), b.copy()
    z = P @ r
    p = z.copy()
    for i in range(n):
        g = A @ x - b
        dirn = pr_direction({"m": g}, {"m": P @ g}, prev, powell_threshold=np.inf)
        d = dirn.raw["m"]
        alpha = -(g @ d) / (d @ A @ d)                         # exact line search
        x = x + alpha * d
        prev = ({"m": g}, {"m": P @ g}, dirn.raw)
        ar = (r @ z) / (p @ A @ p)
        xr = xr + ar * p
        r_new = r - ar * A @ p
        z_new = P @ r_new
        p = z_new + (r_new @ z_new) / (r @ z) * p
        r, z = r_new, z_new
        assert np.allclose(x, xr, rtol=1e-8, atol=1e-10), i
        assert np.isclose(np.abs(dirn.d["m"]).max(), 1.0)       # normalized for the line search
    assert np.allclose(A @ x, b, atol=1e-8)


def test_powell_restart_triggers_exactly_at_the_threshold():
    g0 = {"vsv": np.array([1.0, 0.0]), "vsh": np.array([1.0, 0.0])}
    d0 = {"vsv": np.array([-1.0, 0.0]), "vsh": np.array([-1.0, 0.0])}
    prev = (g0, g0, d0)

    def g_with(r_vsv, r_vsh):   # Pg_i·Pg_{i-1}/|Pg_{i-1}|^2 = r per parameter (P = I)
        return {"vsv": np.array([r_vsv, 1.0]), "vsh": np.array([r_vsh, 1.0])}
    above = pr_direction(g_with(0.2 + 1e-9, 0.3), g_with(0.2 + 1e-9, 0.3), prev, 0.2)
    assert above.restarted and "Powell" in above.reason
    below = pr_direction(g_with(0.2 - 1e-9, 0.3), g_with(0.2 - 1e-9, 0.3), prev, 0.2)
    assert not below.restarted and below.beta != 0   # one parameter below: no restart
    assert below.powell_ratio["vsv"] < 0.2 < below.powell_ratio["vsh"]


def test_restart_when_not_a_descent_direction():
    g0 = {"m": np.array([1.0, 0.0])}
    prev = (g0, g0, {"m": np.array([100.0, 0.0])})     # previous direction points uphill
    g = {"m": np.array([0.1, 1.0])}
    d = pr_direction(g, g, prev, powell_threshold=10.0)
    assert d.restarted and d.reason == "not a descent direction"
    assert dot(g, d.d) < 0


def test_state_resume_gives_the_same_direction(tmp_path):
    A, b = _spd(6, 1)
    st = OptimizerState(str(tmp_path))
    x = np.zeros(6)
    g = A @ x - b
    d0 = pr_direction({"m": g}, {"m": g}, None, 0.2)
    st.save(1, 1, {"m": g}, {"m": g}, d0.raw)
    x = x + 0.05 * d0.d["m"]
    g1 = A @ x - b
    direct = pr_direction({"m": g1}, {"m": g1}, ({"m": g}, {"m": g}, d0.raw), 0.2)
    resumed = pr_direction({"m": g1}, {"m": g1}, OptimizerState(str(tmp_path)).previous(1), 0.2)
    assert np.array_equal(direct.d["m"], resumed.d["m"])
    assert OptimizerState(str(tmp_path)).previous(2) is None   # a new stage restarts


def test_line_search_finds_the_known_minimum_with_linear_synthetics():
    """Synthetics linear in the model (s = G m, as extrapolation assumes): the NZCC misfit along d
    is minimized at the step that recovers the true model."""
    rng = np.random.default_rng(4)
    t = np.arange(600) * 0.1
    basis = np.stack([np.exp(-((t - c) / 4) ** 2) for c in (15, 25, 35, 45)])
    G = basis.T                                         # (nt, 4)
    m_true = np.array([1.0, -0.5, 0.8, 0.3])
    m0 = np.array([1.0, -0.5, 0.2, 0.3])
    d = (m_true - m0) / np.abs(m_true - m0).max()      # max|d| = 1
    alpha_true = np.abs(m_true - m0).max()
    u = G @ m_true
    s0, eps = G @ m0, 0.01
    s_eps = G @ (m0 + eps * d)                          # the one trial forward

    def misfit(a):
        return float(nzcc_misfit_and_adjoint(s0 + (a / eps) * (s_eps - s0), u, None, 0.1)[0])
    r = extrapolated_line_search(misfit, (0.0, 1.0), 41)
    assert r.accepted and abs(r.alpha - alpha_true) < 1e-3 and r.misfit < 1e-8
    assert r.misfit < r.misfit0


def test_line_search_rejects_when_no_step_decreases_the_misfit():
    r = extrapolated_line_search(lambda a: 1.0 + a ** 2, (0.0, 0.03), 11)
    assert not r.accepted and r.alpha == 0.0 and r.misfit == r.misfit0
