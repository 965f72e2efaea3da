"""The structure line search reduced where the data are (issue 16 item 1, SPEC §6 eq. C6).

Real data: the Greece pair (SPECFEM3D_GLOBE REF_SEIS as observed, the tiny 1-D run as s0) and the
Darfield IU.KBL pair (raw counts + StationXML, SPECFEM synthetic). The trial synthetics s_ε are
made from real records: Greece 0.6 s0 + 0.4 REF_SEIS (a step toward the data), Darfield s0 delayed
by 0.6 s and scaled by 1.04. The closed form must equal brute-force re-measurement of the
extrapolated synthetics (today's path: PreparedEvent.misfit_from_segments on
s0 + α (s_ε − s0)/ε) and pick the same α."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seisflows_eara import params
from seisflows_eara.commands.demo import load_kbl_pair
from seisflows_eara.io.specfem_traces import read_synthetics
from seisflows_eara.io.stations import read_stations
from seisflows_eara.measure import Config, event_from_file, measure_event
from seisflows_eara.optimize import reduced
from seisflows_eara.optimize.linesearch import extrapolated_line_search

DATA = Path(__file__).parent / "data"
GRC, DARF = DATA / "regional_greece", DATA / "pytomo3d_darfield"
EPS, RANGE = 0.01, (0.0, 0.03)


def _greece(misfit: str = "nzcc"):
    ev = event_from_file(str(GRC / "CMTSOLUTION"))
    sta = read_stations(GRC / "STATIONS")
    obs = read_synthetics(str(GRC / "REF_SEIS"), ev.time)
    syn = read_synthetics(str(GRC / "tiny_1d"), ev.time)
    by = {s.code: obs.select(network=s.network, station=s.station) for s in sta}
    v = params.defaults()
    v["misfit"] = misfit
    m = measure_event(ev, sta, by, syn, Config(v, 1), observed_processed=True)
    trial = syn.copy()
    for tr in trial:       # 0.6 s0 + 0.4 observed, on the synthetic's axis
        ref = obs.select(id=tr.id)[0]
        tr.data = 0.6 * tr.data + 0.4 * np.interp(tr.times(reftime=ev.time),
                                                  ref.times(reftime=ev.time), ref.data)
    return m.prepared, syn, trial


def _darfield():
    ev, sta, obs, inv, syn = load_kbl_pair(DARF)
    m = measure_event(ev, sta, {"IU.KBL": obs}, syn, Config(params.defaults(), 1), inventory=inv)
    trial = syn.copy()
    for tr in trial:       # delayed 0.6 s on the same axis, scaled
        t = tr.times()
        tr.data = 1.04 * np.interp(t - 0.6, t, tr.data, left=0.0)
    return m.prepared, syn, trial


@pytest.fixture(scope="module")
def events():
    return {"greece": _greece(), "darfield": _darfield()}


def _all_event_wc(preps) -> dict[str, float]:
    """W_c = 1 / (windows with W > 0 in category c over all events), Table 1."""
    cats = np.concatenate([p.categories[p.weights > 0] for p in preps])
    return {str(c): 1.0 / n for c, n in zip(*np.unique(cats, return_counts=True))}


def _brute(prep, s0, strial, wc):
    """Today's path: re-measure s0 + α (s_ε − s0)/ε on the frozen windows."""
    prep.wc = np.array([wc.get(str(c), 0.0) for c in prep.categories])
    ds = (strial - s0) / EPS
    return lambda a: prep.misfit_from_segments(s0 + a * ds)


def test_forward_keeps_the_window_segments_the_line_search_used_to_reprocess(events):
    for prep, syn, _ in events.values():
        assert prep.synthetic is not None and prep.nwin > 0
        assert np.array_equal(prep.synthetic, prep.segments(syn))


def test_closed_form_equals_re_measurement_on_real_data(events, tmp_path):
    preps = [e[0] for e in events.values()]
    wc = _all_event_wc(preps)
    brute, files = [], []
    for name, (prep, _, trial) in events.items():
        s0, st = prep.synthetic, prep.segments(trial)
        brute.append(_brute(prep, s0, st, wc))
        t = reduced.event_terms(name, s0, st, prep.U, prep.taper, prep.dt, prep.offsets,
                                prep.weights, prep.categories, EPS, key="k")
        files.append(str(tmp_path / f"{name}.npz"))
        reduced.write_terms(files[-1], t)
    terms = reduced.concatenate([reduced.read_terms(f) for f in files])
    assert terms.events == ("greece", "darfield")
    assert terms.nwin == sum(int((p.weights > 0).sum()) for p in preps) >= 15
    chi = reduced.ReducedMisfit(terms, wc)

    def today(a):
        return sum(f(a) for f in brute)
    alphas = np.linspace(*RANGE, 31)
    ref = np.array([today(a) for a in alphas])
    new = np.array([chi(a) for a in alphas])
    assert np.all(np.abs(new - ref) <= 1e-9 * np.abs(ref)), np.max(np.abs(new / ref - 1))
    assert ref.min() < 0.9 * ref[0] and 0 < np.argmin(ref) < ref.size - 1   # inside the range
    r_ref = extrapolated_line_search(today, RANGE, 61)
    r_new = reduced.line_search(terms, wc, RANGE, 61)
    assert r_new.accepted and r_ref.accepted and 0 < r_new.alpha < RANGE[1]
    assert abs(r_new.alpha - r_ref.alpha) <= 1e-9 * (RANGE[1] - RANGE[0])
    assert abs(r_new.misfit - r_ref.misfit) <= 1e-9 * r_ref.misfit
    assert r_new.misfit0 == pytest.approx(r_ref.misfit0, rel=1e-12)


def test_closed_form_rejects_like_re_measurement_when_nothing_decreases(events):
    """s_ε away from the data: no α > 0 lowers χ; both paths keep α = 0 (never an increase)."""
    prep, syn, trial = events["greece"]
    s0 = prep.synthetic
    away = 2.0 * s0 - prep.segments(trial)
    wc = _all_event_wc([prep])
    t = reduced.event_terms("g", s0, away, prep.U, prep.taper, prep.dt, prep.offsets,
                            prep.weights, prep.categories, EPS)
    r_new = reduced.line_search(t, wc, RANGE, 61)
    r_ref = extrapolated_line_search(_brute(prep, s0, away, wc), RANGE, 61)
    assert not r_new.accepted and not r_ref.accepted and r_new.alpha == 0.0
    assert r_new.misfit == pytest.approx(r_ref.misfit, rel=1e-12)


def test_zero_energy_and_zero_weight_windows_count_like_re_measurement(events):
    """Windows whose observed segment has no energy (NZCC undefined) and windows of weight 0
    contribute nothing, as in misfit_from_segments; an extrapolated window of zero energy is
    undefined too (at α = ε when s_ε vanishes there: exact in the closed form, while
    re-measurement sees the rounding residue of s0 + ε (0 − s0)/ε)."""
    prep, syn, trial = events["greece"]
    s0, st = prep.synthetic, prep.segments(trial)
    i, j = np.flatnonzero(prep.weights > 0)[:2]
    u = prep.U.copy()
    u[prep.offsets[i]:prep.offsets[i + 1]] = 0.0          # no observed energy in window i
    wc = _all_event_wc([prep])
    t = reduced.event_terms("g", s0, st, u, prep.taper, prep.dt, prep.offsets, prep.weights,
                            prep.categories, EPS)
    f = reduced.ReducedMisfit(t, wc)
    kept = prep.U
    try:
        prep.U = u
        g = _brute(prep, s0, st, wc)
        for a in (0.0, 0.005, EPS, 0.02):
            assert f(a) == pytest.approx(g(a), rel=1e-12)
    finally:
        prep.U = kept
    assert f.windows == (prep.weights > 0).sum() - 1       # window i never counts
    st0 = st.copy()
    st0[prep.offsets[j]:prep.offsets[j + 1]] = 0.0         # s(ε) = 0 in window j
    t = reduced.event_terms("g", s0, st0, prep.U, prep.taper, prep.dt, prep.offsets,
                            prep.weights, prep.categories, EPS)
    f0, g0 = reduced.ReducedMisfit(t, wc), _brute(prep, s0, st0, wc)
    assert np.isnan(f0.per_window(EPS)).sum() == 1
    for a in (0.0, 0.005, 0.02):
        assert f0(a) == pytest.approx(g0(a), rel=1e-12)


def test_terms_files_name_themselves_when_missing_or_damaged(tmp_path):
    with pytest.raises(FileNotFoundError, match="EV9.npz"):
        reduced.read_terms(str(tmp_path / "EV9.npz"))
    bad = tmp_path / "EV8.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(FileNotFoundError, match="EV8.npz"):
        reduced.read_terms(str(bad))
    assert reduced.term_key(str(bad)) is None


def test_master_sums_800k_windows_in_well_under_a_second_per_alpha():
    """O(windows) vector work per α: 800k windows, 80 evaluations (the line search's grid and
    refinement) in seconds; timing lives in benchmarks/bench_scale.py, this checks the shape."""
    n = 800_000
    rng = np.random.default_rng(0)
    c = rng.uniform(0.5, 2.0, n)
    t = reduced.WindowTerms(dict(su0=0.8 * c, sud=0.1 * c, ss0=c, s0d=0.05 * c, sdd=0.02 * c,
                                 uu=np.ones(n)), np.ones(n), np.zeros(n, np.int16), ("pz",),
                            np.zeros(n, np.int32), ("E",), EPS)
    f = reduced.ReducedMisfit(t, {"pz": 1.0 / n})
    assert f.windows == n and 0 < f(0.01) < f(0.0)


@pytest.mark.parametrize("kind", ["cc_traveltime",
                                  pytest.param("multitaper", marks=pytest.mark.slow)])
def test_alternative_misfits_grid_path_equals_re_measurement_on_the_grid(kind):
    """pyadjoint misfits: each event's misfit on the α grid, summed by the master, equals
    re-measurement at the same α; the chosen α is today's best grid point. Today's path then
    refines between grid points (Brent, one master-side re-measurement per trial α): its α
    differs from the grid's by less than one grid spacing and its misfit can only be lower."""
    prep, _, trial = _greece(kind)
    s0, st = prep.synthetic, prep.segments(trial)
    wc = _all_event_wc([prep])
    samples = 7
    alphas = reduced.search_grid(RANGE, samples)
    g = reduced.grid_terms("g", s0, st, prep.weights, prep.categories,
                           lambda S: prep.other_misfit(S)[0], alphas, EPS)
    r_new = reduced.grid_line_search([g], wc, RANGE)
    today = _brute(prep, s0, st, wc)
    ref = np.array([today(a) for a in alphas])
    assert np.allclose(r_new.misfits, ref, rtol=1e-12, atol=0)
    k = int(np.argmin(ref))
    assert r_new.accepted and r_new.alpha == alphas[k] and r_new.misfit == pytest.approx(ref[k])
    r_ref = extrapolated_line_search(today, RANGE, samples)
    assert abs(r_ref.alpha - r_new.alpha) <= (RANGE[1] - RANGE[0]) / (samples - 1)
    assert r_ref.misfit <= r_new.misfit * (1 + 1e-12)


def test_grid_starts_at_zero_and_sums_events_with_wc():
    assert reduced.search_grid((0.01, 0.03), 3) == pytest.approx([0.0, 0.01, 0.02, 0.03])
    a = np.array([0.0, 0.01, 0.02])
    g1 = reduced.GridTerms(a, np.array([[3.0, 2.0, 2.5], [1.0, 1.0, 1.0]]), ("pz", "sh"),
                           ("E1",), 4, EPS)
    g2 = reduced.GridTerms(a, np.array([[1.0, 0.5, 0.2]]), ("sh",), ("E2",), 2, EPS)
    _, total = reduced.sum_grids([g1, g2], {"pz": 0.5, "sh": 2.0})
    assert np.allclose(total, [0.5 * 3 + 2 * 2, 0.5 * 2 + 2 * 1.5, 0.5 * 2.5 + 2 * 1.2])
    r = reduced.grid_line_search([g1, g2], {"pz": 0.5, "sh": 2.0}, (0.0, 0.02))
    assert r.accepted and r.alpha == 0.02 and r.misfit == pytest.approx(3.65)
    r = reduced.grid_line_search([g1, g2], {"pz": 0.5, "sh": 2.0}, (0.0, 0.01))
    assert r.accepted and r.alpha == 0.01 and r.misfit0 == pytest.approx(5.5)
    up = reduced.GridTerms(a, np.array([[1.0, 1.5, 1.0]]), ("pz",), ("E3",), 1, EPS)
    r = reduced.grid_line_search([up], {"pz": 1.0}, (0.0, 0.02))
    assert not r.accepted and r.alpha == 0.0 and r.misfit == 1.0     # a tie is no decrease


# ---------------------------------------------------------------- the workflow's retry fallbacks
class _Killed(BaseException):
    """A kill of the master (not an Exception: nothing catches it)."""


def _workflow(tmp_path, kill_at: int | None = None):
    """The workflow plugin's trial-forward / model-update methods on stand-ins: trial forwards that
    only record which trial model ran, terms from in-memory windows (a trial model named 'bad'
    moves away from the data, 'good' toward it), direction retries that rename the trial."""
    from types import SimpleNamespace

    from seisflows_eara.plugins.optimize import EaraPcg
    from seisflows_eara.plugins.workflow import EaraInversion
    from seisflows_eara.schedule import Step, WorkflowState
    from seisflows_eara.windows.ragged import offsets_from_lengths
    rng = np.random.default_rng(3)
    lengths = np.array([300, 200, 250])
    offsets = offsets_from_lengths(lengths)
    data = {e: (rng.standard_normal(offsets[-1]), rng.standard_normal(offsets[-1]))
            for e in ("E1", "E2")}
    wf = EaraInversion.__new__(EaraInversion)
    wf._eara_all = params.defaults()
    wf.path = SimpleNamespace(workdir=str(tmp_path), eara_state=str(tmp_path / "state.json"),
                              markers=str(tmp_path / "markers"), output=str(tmp_path / "out"))
    log = []
    ran: dict[str, str] = {}
    wf.solver = SimpleNamespace(source_names=["E1", "E2"], source_name=None)

    def run(tasks, **kw):
        for e in wf.solver.source_names:
            wf.solver.source_name = e
            tasks[0]()
    wf.system = SimpleNamespace(run=run, ntask=2)

    def forward(step, model, **kw):
        if kill_at is not None and len(log) + 1 == kill_at:
            raise _Killed()
        ran[wf.solver.source_name] = model
        log.append((wf.solver.source_name, model))
    wf._forward = forward

    def terms(prepared, s0, strial, trial_step, output, event, key):
        s, u = data[event]
        sign = 1.0 if "good" in ran[event] else -1.0
        st = s + sign * trial_step * (u - s) / 0.02
        reduced.write_terms(output, reduced.event_terms(
            event, s, st, u, None, 0.1, offsets, np.ones(3), ["pz", "sh", "pz"], trial_step,
            key))

    def retry(info, restart):
        eps = 0.01 if restart else info["trial_step"] * 0.5
        name = "good" if restart else "bad"
        return dict(info, trial_step=eps, trial_model=f"{name}_{eps}",
                    direction="restart.npz" if restart else info["direction"])
    updated = {}
    wf.optimize = SimpleNamespace(
        structure_line_search_terms=terms, retry_direction=retry, max_step_retries=1,
        structure_step_range=[0.0, 0.03],
        structure_line_search=EaraPcg.structure_line_search.__get__(wf),
        write_updated_model=lambda m, d, a, new, mesh: updated.update(alpha=a, direction=d))
    wf.preprocess = SimpleNamespace(load_prepared=lambda key, e: None)
    step = Step(1, "structure", 1, "model_update", 1)
    state = WorkflowState.load(wf.path.eara_state)
    if "wc" not in state.records:
        state.records.update(model="m0", wc={step.sibling("forward").key: {"pz": 0.5, "sh": 1.0}},
                             directions={step.sibling("direction").key: dict(
                                 direction="d.npz", trial_model="bad_0.01", trial_step=0.01,
                                 mesh="mesh")})
        state.save()
    return wf, step, log, updated


def test_workflow_retries_smaller_step_then_restart_and_resumes_after_a_kill(tmp_path):
    """Rejected trial ('bad'), a smaller trial step (still 'bad'), then β = 0 ('good'): three trial
    forwards per event, new terms each time, the accepted α fits the data (0.02). Killed during the
    retry's trial forward and resumed: the same α, and no finished trial forward repeated."""
    wf, step, log, updated = _workflow(tmp_path / "a")
    wf._step_trial_forward(step.sibling("trial_forward"))
    wf._step_model_update(step)
    assert [m for e, m in log if e == "E1"] == ["bad_0.01", "bad_0.005", "good_0.01"]
    assert updated["direction"] == "restart.npz"
    assert updated["alpha"] == pytest.approx(0.02, abs=1e-5)
    rec = wf.state.records["line_searches"][step.key]
    assert rec["accepted"] and rec["method"] == "nzcc_closed_form" and rec["windows"] == 6

    # killed at the 4th trial forward (E2's run of the first retry), then resumed
    wf, step, log, updated2 = _workflow(tmp_path / "b", kill_at=4)
    wf._step_trial_forward(step.sibling("trial_forward"))
    with pytest.raises(_Killed):
        wf._step_model_update(step)
    done = list(log)
    wf, step, log, updated2 = _workflow(tmp_path / "b")
    wf._step_model_update(step)
    assert done == [("E1", "bad_0.01"), ("E2", "bad_0.01"), ("E1", "bad_0.005")]
    assert log == [("E2", "bad_0.005"), ("E1", "good_0.01"), ("E2", "good_0.01")]
    assert updated2 == updated


def test_workflow_reruns_a_trial_whose_terms_belong_to_an_earlier_try(tmp_path):
    """Killed after a retry's direction record was saved but before the trial markers were
    cleared: the terms files carry the earlier trial's key, so those trial forwards run again
    (and only those) instead of a line search on the earlier trial's terms."""
    wf, step, log, updated = _workflow(tmp_path)
    trial = step.sibling("trial_forward")
    wf._step_trial_forward(trial)
    state = wf.state
    info = state.records["directions"][step.sibling("direction").key]
    state.records["directions"][step.sibling("direction").key] = dict(
        info, trial_model="good_0.01", direction="restart.npz", retries=2)
    state.save()                       # ... and the kill: markers of 'bad_0.01' still there
    assert wf.markers.done(trial, "E1") and wf.markers.done(trial, "E2")
    wf, step, log2, updated = _workflow(tmp_path)
    wf._step_model_update(step)
    assert log2 == [("E1", "good_0.01"), ("E2", "good_0.01")]
    assert updated["alpha"] == pytest.approx(0.02, abs=1e-5)


def test_plugin_terms_use_the_kept_segments_or_read_s0_for_older_pickles(events, tmp_path):
    """optimize.structure_line_search_terms in the event task: s_ε read from the trial run's
    folder; s0 from the forward's kept segments, or (frozen windows pickled before they were
    kept) from the forward's synthetics folder, with the same terms; then the master's
    structure_line_search on the file equals the in-memory closed form."""
    import copy
    from types import SimpleNamespace

    from seisflows_eara.plugins.optimize import EaraPcg
    prep = events["greece"][0]
    fake = SimpleNamespace(eara=params.defaults())
    terms = EaraPcg.structure_line_search_terms.__get__(fake)
    n = terms(prep, s0="/nonexistent", strial=str(GRC / "tiny_1d"), trial_step=EPS,
              output=str(tmp_path / "a.npz"), event="g", key="k1")
    old = copy.copy(prep)
    old.synthetic = None
    terms(old, s0=str(GRC / "tiny_1d"), strial=str(GRC / "tiny_1d"), trial_step=EPS,
          output=str(tmp_path / "b.npz"), event="g", key="k1")
    a, b = reduced.read_terms(str(tmp_path / "a.npz")), reduced.read_terms(str(tmp_path / "b.npz"))
    assert n == a.nwin == (prep.weights > 0).sum() and a.key == "k1"
    for k in reduced.PRODUCTS:
        assert np.array_equal(a.products[k], b.products[k]), k
    assert not np.any(a.products["sud"])           # s_ε = s0 here
    wc = _all_event_wc([prep])
    r = EaraPcg.structure_line_search.__get__(fake)({"g": str(tmp_path / "a.npz")}, wc, EPS)
    assert r["method"] == "nzcc_closed_form" and not r["accepted"]
    assert r["misfit0"] == pytest.approx(reduced.ReducedMisfit(a, wc)(0.0), rel=1e-15)
    with pytest.raises(ValueError, match="trial step 0.01"):
        EaraPcg.structure_line_search.__get__(fake)({"g": str(tmp_path / "a.npz")}, wc, 0.005)
