"""Batched response removal (processing.response) against obspy's Trace.remove_response, trace by
trace, on real raw records: IU.KBL (Darfield, 40 sps, 105 min) and the Okhotsk records (AE.113A,
TA.POKR); water level on (clipping in-band bins), off, and no pre-filter (the whole grid)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import obspy
import pytest

from seisflows_eara.processing import response as R

DATA = Path(__file__).parent / "data"
OKH = Path("/work/shared/fixtures/pyasdf_okhotsk")
PRE = (0.004, 0.0067, 0.125, 0.2)


def _records(which: str):
    if which == "kbl":
        d = DATA / "pytomo3d_darfield"
        return obspy.read(str(d / "IU.KBL.obs.mseed")), obspy.read_inventory(str(d / "IU.KBL.xml"))
    base = OKH if OKH.is_dir() else DATA / "pyasdf_okhotsk"
    return obspy.read(str(base / "*.mseed")), obspy.read_inventory(str(base / "*BH_.xml"))


@pytest.mark.parametrize("which, pre, wl", [
    ("kbl", PRE, 60.0), ("okhotsk", PRE, 60.0),
    pytest.param("kbl", PRE, None, marks=pytest.mark.slow),
    pytest.param("okhotsk", None, 60.0, marks=pytest.mark.slow)])
def test_batched_removal_equals_obspy_per_trace(which, pre, wl):
    st, inv = _records(which)
    ref = st.copy()
    for tr in ref:
        tr.data = tr.data.astype(np.float64)
    ref.remove_response(inventory=inv, output="DISP", pre_filt=pre, water_level=wl)
    ours = st.copy()
    R._CACHE.clear()
    R.remove_response_traces(list(ours), inv, "DISP", pre, wl, max_samples=1)  # 1 row per FFT
    again = st.copy()
    R.remove_response_traces(list(again), inv, "DISP", pre, wl)     # cached, one block
    for a, b, c in zip(ref, ours, again):
        assert a.id == b.id and b.data.dtype == np.float64 and b.stats.npts == a.stats.npts
        scale = np.abs(a.data).max()
        assert np.abs(b.data - a.data).max() <= 1e-9 * scale, a.id
        np.testing.assert_allclose(c.data, b.data, rtol=0, atol=1e-12 * scale)
        # in the band (f2..f3 of the pre-filter), relative to each bin's own amplitude
        if pre:
            fa, fb = np.fft.rfft(a.data), np.fft.rfft(b.data)
            f = np.fft.rfftfreq(a.stats.npts, a.stats.delta)
            band = (f >= pre[1]) & (f <= pre[2])
            assert np.max(np.abs(fb[band] - fa[band]) / np.abs(fa[band]).max()) <= 1e-6


def test_water_level_really_clips_in_band_bins_of_kbl():
    """The case above with water level 60 dB is not trivial: on KBL the displacement response at
    the long-period end of the pre-filter lies below max|R|·10^-3, so the level changes those bins
    (and an error in max|R| would show)."""
    st, inv = _records("kbl")
    tr = st[0]
    from obspy.signal.util import _npts2nfft
    nfft = _npts2nfft(tr.stats.npts)
    resp = inv.get_response(tr.id, tr.stats.starttime)
    full, f = resp.get_evalresp_response(tr.stats.delta, nfft, output="DISP")
    swamp = np.abs(full).max() * 1e-3
    band = (f > PRE[0]) & (f < PRE[3])
    assert (np.abs(full[band]) < swamp).any()
    lo, hi = np.flatnonzero(band)[[0, -1]] + [0, 1]
    peak, in_band = R._max_abs_response(resp, f, "DISP", (lo, hi))
    assert peak == np.abs(full).max()
    # the band's values come from the same evalresp call as the coarse grid: each frequency's
    # value is its own: bit for bit those of obspy's whole-grid evaluation
    assert np.array_equal(in_band, full[lo:hi])
    for st2, inv2 in (_records("okhotsk"),):      # the refined search finds the exact maximum
        for tr2 in st2:
            r2 = inv2.get_response(tr2.id, tr2.stats.starttime)
            full2, f2 = r2.get_evalresp_response(tr2.stats.delta, _npts2nfft(tr2.stats.npts),
                                                 output="DISP")
            assert R._max_abs_response(r2, f2, "DISP")[0] == np.abs(full2).max(), tr2.id


def test_identical_responses_share_one_evaluation(monkeypatch):
    st, inv = _records("kbl")
    calls = []
    orig = obspy.core.inventory.Response.get_evalresp_response_for_frequencies

    def counting(self, *a, **k):
        calls.append(1)
        return orig(self, *a, **k)
    monkeypatch.setattr(obspy.core.inventory.Response, "get_evalresp_response_for_frequencies",
                        counting)
    R._CACHE.clear()
    tr = st.select(component="Z")[0]
    copies = [tr.copy() for _ in range(4)]
    R.remove_response_traces(copies, inv, "DISP", PRE, 60.0)
    n = len(calls)
    assert 0 < n <= 4       # band, coarse grid, two refinements: once for the four traces
    for c in copies[1:]:
        np.testing.assert_array_equal(c.data, copies[0].data)


def test_missing_response_names_the_trace():
    st, _ = _records("kbl")
    with pytest.raises(ValueError, match="IU.KBL..BH"):
        R.remove_response_traces(list(st), obspy.Inventory(), "DISP", PRE, 60.0)


def test_decimated_removal_is_every_qth_sample_of_obspys():
    """target_rate=10 on the 40-sps KBL record: the pre-filter zeroes every bin above 0.2 Hz, so
    the inverse FFT of the low bins on nfft/4 points is obspy's result at every 4th sample (to
    rounding); without a pre-filter nothing is band-limited: no decimation."""
    st, inv = _records("kbl")
    ref = st.copy()
    for tr in ref:
        tr.data = tr.data.astype(np.float64)
    ref.remove_response(inventory=inv, output="DISP", pre_filt=PRE, water_level=60.0)
    ours = st.copy()
    R.remove_response_traces(list(ours), inv, "DISP", PRE, 60.0, target_rate=10.0)
    for a, b in zip(ref, ours):
        assert b.stats.sampling_rate == 10.0 and b.stats.starttime == a.stats.starttime
        assert b.stats.npts == -(-a.stats.npts // 4)
        assert np.abs(b.data - a.data[::4]).max() <= 1e-9 * np.abs(a.data).max(), a.id
    assert R.decimation_factor(40.0, 10.0) == 4 and R.decimation_factor(25.0, 10.0) == 2
    assert R.decimation_factor(10.0, 10.0) == 1 and R.decimation_factor(40.0, None) == 1
    plain = st.select(component="Z").copy()
    R.remove_response_traces(list(plain), inv, "DISP", None, 60.0, target_rate=10.0)
    assert plain[0].stats.sampling_rate == 40.0
