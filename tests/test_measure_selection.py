"""Observed data as FDSN data centres deliver them (issue 17), built from the real IU.KBL record of
the Darfield event (raw counts + StationXML, tests/data/pytomo3d_darfield) and the Greece event:
several locations and bands per station, 1/2 channels, counts without a response, gaps and
overlaps, damaged and foreign files, event names from QuakeML resource ids. Every variant is made
at test time in memory or in a temporary folder from the real records."""
from __future__ import annotations

import copy
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
import pytest

from seisflows_eara import params
from seisflows_eara.commands.demo import load_kbl_pair
from seisflows_eara.io.cmtsolution import CMTSolutionError
from seisflows_eara.measure import Config, event_from_file, measure_event

DATA = Path(__file__).parent / "data"
DARF = DATA / "pytomo3d_darfield"
OKH = DATA / "pyasdf_okhotsk"
GRC = DATA / "regional_greece"
REPO = Path(__file__).resolve().parents[1]
#: the per-window measurements (independent of the other stations; weights are not)
MEASURED = ["win_start", "win_end", "nzcc", "cc_max", "dt", "snr_db", "w_quality"]


def _cfg(**changes) -> Config:
    v = params.defaults()
    v.update(changes)
    return Config(v, 1)


def _windows(t: pd.DataFrame) -> pd.DataFrame:
    """Window rows (measured) sorted by category and start."""
    w = t[t.nzcc.notna()].sort_values(["category", "win_start"])
    return w.reset_index(drop=True)


@pytest.fixture(scope="module")
def kbl():
    ev, sta, obs, inv, syn = load_kbl_pair(DARF)
    m = measure_event(ev, sta, {"IU.KBL": obs}, syn, _cfg(), inventory=inv)
    assert (m.table.status == "ok").sum() >= 6
    return ev, sta, obs, inv, syn, m


def _relabel(st: obspy.Stream, location: str | None = None, band: str | None = None,
             network: str | None = None) -> obspy.Stream:
    st = st.copy()
    for tr in st:
        if location is not None:
            tr.stats.location = location
        if band is not None:
            tr.stats.channel = band + tr.stats.channel[2:]
        if network is not None:
            tr.stats.network = network
    return st


def _inventory_for(inv: obspy.Inventory, variants: list[tuple[str, str, float]]
                   ) -> obspy.Inventory:
    """The real StationXML with its channels copied to each (location, band, sampling rate)."""
    inv = copy.deepcopy(inv)
    sta = inv[0][0]
    real = list(sta.channels)
    sta.channels = []
    for loc, band, rate in variants:
        for ch in real:
            c = copy.deepcopy(ch)
            c.location_code, c.code, c.sample_rate = loc, band + ch.code[2:], rate
            sta.channels.append(c)
    return inv


def _multi(obs: obspy.Stream) -> obspy.Stream:
    """Two sensors and two bands: 00 BH (the real record), 10 BH at 20 sps, 00 LH at 1 sps."""
    def resampled(st, step):          # zero-phase anti-alias filter, every step-th sample
        st = st.copy()
        for tr in st:
            tr.data = tr.data.astype(np.float64)
            tr.filter("lowpass", freq=0.4 * tr.stats.sampling_rate / step, corners=4,
                      zerophase=True)
            tr.data = tr.data[::step].copy()
            tr.stats.sampling_rate /= step
        return st
    return _relabel(obs, "00") + resampled(_relabel(obs, "10"), 2) + \
        resampled(_relabel(obs, "00", "LH"), 40)


def _multi_inventory(inv):
    return _inventory_for(inv, [("00", "BH", 40.0), ("10", "BH", 20.0), ("00", "LH", 1.0)])


# ---------------------------------------------------------------- locations and bands
def test_multi_location_mixed_band_measured_once_by_priority(kbl):
    ev, sta, obs, inv, syn, m0 = kbl
    m = measure_event(ev, sta, {"IU.KBL": _multi(obs)}, syn, _cfg(),
                      inventory=_multi_inventory(inv))
    t = m.table
    w = _windows(t)
    assert (w.location == "00").all() and (w.channel == "BHZ,BHE,BHN").all()
    unused = t[t.status == "unused"]
    assert set(zip(unused.location, unused.channel)) == {("10", "BHZ,BHE,BHN"),
                                                         ("00", "LHZ,LHE,LHN")}
    assert unused.reason.str.contains("IU.KBL.00.BH\\? comes first").all()
    # equal to measuring the single real record
    pd.testing.assert_frame_equal(w[MEASURED], _windows(m0.table)[MEASURED], check_exact=True)
    np.testing.assert_array_equal(m.adjoint["IU.KBL"], m0.adjoint["IU.KBL"])
    assert m.provenance["IU.KBL"] == ["IU.KBL.00.BHE", "IU.KBL.00.BHN", "IU.KBL.00.BHZ"]
    # the priority lists decide: location 10 first, or LH first
    m10 = measure_event(ev, sta, {"IU.KBL": _multi(obs)}, syn,
                        _cfg(location_priorities=["10", "00"]), inventory=_multi_inventory(inv))
    assert (_windows(m10.table).location == "10").all()
    mlh = measure_event(ev, sta, {"IU.KBL": _multi(obs)}, syn,
                        _cfg(channel_priorities=["LH[ZNE12]", "BH[ZNE12]"]),
                        inventory=_multi_inventory(inv))
    wl = _windows(mlh.table)
    assert (wl.channel == "LHZ,LHE,LHN").all() and (wl.status == "ok").sum() >= 4
    # the 20-sps copy measures the body waves as the 40-sps record does (the surface band is
    # not compared: the response water level is relative to the DISP response maximum, near
    # Nyquist, so it depends on the sampling rate and clips 40-120 s differently)
    body = _windows(m0.table).band == "body"
    np.testing.assert_allclose(_windows(m10.table).nzcc[body], _windows(m0.table).nzcc[body],
                               atol=2e-3)


def test_all_locations_measured_separately_adjoint_sources_summed(kbl):
    """measure_all_locations: both sensors measured; the station's adjoint source per category is
    the sum of the two single-location ones (colocated: W_es = 1 each, as for one station)."""
    ev, sta, obs, inv, syn, m0 = kbl
    multi, minv = _multi(obs), _multi_inventory(inv)
    m = measure_event(ev, sta, {"IU.KBL": multi}, syn, _cfg(measure_all_locations=True),
                      inventory=minv)
    w = _windows(m.table)
    assert set(w.location) == {"00", "10"} and (w.channel == "BHZ,BHE,BHN").all()
    one = {loc: measure_event(ev, sta, {"IU.KBL": multi.select(location=loc, channel="BH?")},
                              syn, _cfg(), inventory=minv) for loc in ("00", "10")}
    for loc in ("00", "10"):
        pd.testing.assert_frame_equal(w[w.location == loc][MEASURED].reset_index(drop=True),
                                      _windows(one[loc].table)[MEASURED])
    assert np.allclose(w.w_geographic, 1.0)
    for cat, per in m.adjoint_by_category.items():
        want = one["00"].adjoint_by_category[cat]["IU.KBL"] + \
            one["10"].adjoint_by_category[cat]["IU.KBL"]
        np.testing.assert_allclose(per["IU.KBL"], want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    assert sorted(m.provenance["IU.KBL"]) == sorted(
        f"IU.KBL.{loc}.BH{c}" for loc in ("00", "10") for c in "ENZ")


def test_one_two_channels_rotated_by_their_stationxml_azimuths(kbl):
    """BH1/BH2 at azimuths 30° and 120° (the N/E record rotated into that frame, StationXML
    edited to match): Stream.rotate('->ZNE') with the inventory gives the N/E results."""
    ev, sta, obs, inv, syn, m0 = kbl
    th = np.radians(30.0)
    rot = obs.copy()
    n = rot.select(channel="BHN")[0].data.astype(np.float64)
    e = rot.select(channel="BHE")[0].data.astype(np.float64)
    for tr in rot:
        tr.data = tr.data.astype(np.float64)
        if tr.stats.channel == "BHN":
            tr.stats.channel, tr.data = "BH1", n * np.cos(th) + e * np.sin(th)
        elif tr.stats.channel == "BHE":
            tr.stats.channel, tr.data = "BH2", -n * np.sin(th) + e * np.cos(th)
    inv12 = copy.deepcopy(inv)
    for ch in inv12[0][0]:
        if ch.code == "BHN":
            ch.code, ch.azimuth = "BH1", 30.0
        elif ch.code == "BHE":
            ch.code, ch.azimuth = "BH2", 120.0
    m = measure_event(ev, sta, {"IU.KBL": rot}, syn, _cfg(), inventory=inv12)
    w, w0 = _windows(m.table), _windows(m0.table)
    assert (w.channel == "BHZ,BH1,BH2").all() and len(w) == len(w0)
    np.testing.assert_allclose(w.nzcc, w0.nzcc, atol=1e-9)
    np.testing.assert_allclose(w.dt, w0.dt, atol=1e-9)
    # the same sensor declared N/E at 0°/90°, its real 30° known from the misorientation table
    # (SPEC §2): corrected on top of the StationXML orientation, the same results
    mis = rot.copy()
    for tr in mis:
        tr.stats.channel = {"BH1": "BHN", "BH2": "BHE"}.get(tr.stats.channel, tr.stats.channel)
    m3 = measure_event(ev, sta, {"IU.KBL": mis}, syn, _cfg(), inventory=inv,
                       misorientation={"IU.KBL": 30.0})
    np.testing.assert_allclose(_windows(m3.table).nzcc, w0.nzcc, atol=1e-9)
    # without StationXML azimuths, 1/2 cannot be rotated: the reason says so
    rot_disp = rot.copy()
    m2 = measure_event(ev, sta, {"IU.KBL": rot_disp}, syn, _cfg(observed_displacement=True))
    assert m2.table.reason.str.contains("need StationXML azimuth and dip").any()


# ---------------------------------------------------------------- units
def test_counts_without_response_are_refused_and_displacement_is_opt_in(kbl):
    ev, sta, obs, inv, syn, m0 = kbl
    for opt in (False, True):          # integer counts: refused even with the opt-in
        m = measure_event(ev, sta, {"IU.KBL": obs}, syn, _cfg(observed_displacement=opt))
        r = m.table.reason.iloc[0]
        assert len(m.table) == 1 and "IU.KBL" in r and "no response for IU.KBL..BHE" in r
        assert "integer counts (int32)" in r
    disp = obs.copy()
    pre = (0.5 / 120, 0.8 / 120, 0.125, 0.2)
    disp.detrend("demean")
    disp.taper(0.05)
    disp.remove_response(inventory=inv, output="DISP", pre_filt=pre, water_level=60.0)
    refused = measure_event(ev, sta, {"IU.KBL": disp}, syn, _cfg())
    assert "set observed_displacement: true" in refused.table.reason.iloc[0]
    m = measure_event(ev, sta, {"IU.KBL": disp}, syn, _cfg(observed_displacement=True))
    w, w0 = _windows(m.table), _windows(m0.table)
    assert (w.status == "ok").sum() == (w0.status == "ok").sum()
    np.testing.assert_allclose(w.nzcc, w0.nzcc, atol=5e-3)     # same record, in m already


def test_epoch_and_location_mismatches_are_named(kbl):
    ev, sta, obs, inv, syn, _ = kbl
    m = measure_event(ev, sta, {"IU.KBL": _relabel(obs, "20")}, syn, _cfg(), inventory=inv)
    assert 'no response for IU.KBL.20.BHE at 2010-09-03; StationXML has location ""' in \
        m.table.reason.iloc[0]
    two = _inventory_for(inv, [("00", "BH", 40.0), ("10", "BH", 40.0)])
    m = measure_event(ev, sta, {"IU.KBL": _relabel(obs, "20")}, syn, _cfg(), inventory=two)
    assert "StationXML has locations 00, 10" in m.table.reason.iloc[0]
    old = copy.deepcopy(inv)
    for ch in old[0][0]:
        ch.end_date = obspy.UTCDateTime(2009, 1, 1)
    m = measure_event(ev, sta, {"IU.KBL": obs}, syn, _cfg(), inventory=old)
    assert "no response for IU.KBL..BHE at 2010-09-03; StationXML has IU.KBL..BHE 2006-11-09 " \
           "to 2009-01-01" in m.table.reason.iloc[0]


# ---------------------------------------------------------------- gaps and overlaps
def _split(tr: obspy.Trace, t0: float, t1: float, ref: obspy.UTCDateTime) -> list[obspy.Trace]:
    """The trace without its samples between t0 and t1 s after `ref` (two traces)."""
    a, b = tr.copy(), tr.copy()
    a.trim(tr.stats.starttime, ref + t0)
    b.trim(ref + t1, tr.stats.endtime)
    return [a, b]


def test_a_window_over_a_gap_is_rejected_with_its_span_the_rest_measured(kbl):
    ev, sta, obs, inv, syn, m0 = kbl
    w0 = _windows(m0.table)
    p_win = w0[w0.category == "pz"].iloc[0]                       # the first P window
    t_gap = p_win.win_start + 30.0
    gapped = obspy.Stream([tr for tr in obs if tr.stats.channel != "BHZ"])
    gapped += obspy.Stream(_split(obs.select(channel="BHZ")[0], t_gap, t_gap + 8.0, ev.time))
    m = measure_event(ev, sta, {"IU.KBL": gapped}, syn, _cfg(), inventory=inv)
    t = m.table
    hit = t[t.reason.str.contains("window touches a gap", na=False)]
    assert set(hit.category) >= {"pz"} and (hit.status == "rejected").all()
    span = re.search(r"gap in IU\.KBL\.\.BHZ from ([-.\d]+) to ([-.\d]+) s \(2010-09-03T",
                     hit.reason.iloc[0])
    assert span and abs(float(span[1]) - t_gap) < 0.1 and abs(float(span[2]) - t_gap - 8) < 0.1
    assert abs(hit[hit.category == "pz"].win_start.min() - p_win.win_start) < 0.1
    w = _windows(t)
    far = w0[(w0.win_start > t_gap + 200) | (w0.win_end < t_gap - 200)]
    assert len(w) == len(far) and (w.status == "ok").all()
    np.testing.assert_allclose(w.nzcc, far.nzcc, atol=2e-3)       # the rest of the record
    # a short gap may be interpolated on request: measured, and the table says so
    m = measure_event(ev, sta, {"IU.KBL": gapped}, syn, _cfg(gap_interpolation_max=10.0),
                      inventory=inv)
    w = _windows(m.table)
    assert len(w) == len(w0) and w.notes.str.contains("interpolated").all()


def test_an_overlap_that_disagrees_rejects_its_window_identical_ones_merge(kbl):
    ev, sta, obs, inv, syn, m0 = kbl
    w0 = _windows(m0.table)
    win = w0[w0.category == "sh"].iloc[0]
    t1 = win.win_start + 20.0
    e = obs.select(channel="BHE")[0]
    a, b = e.copy(), e.copy()
    a.trim(e.stats.starttime, ev.time + t1 + 5.0)
    b.trim(ev.time + t1, e.stats.endtime)
    b.data = b.data.copy()
    b.data[:400] += 5000                                   # 5 s of overlap that disagree
    st = obspy.Stream([tr for tr in obs if tr.stats.channel != "BHE"]) + a + b
    m = measure_event(ev, sta, {"IU.KBL": st}, syn, _cfg(), inventory=inv)
    hit = m.table[m.table.reason.str.contains("window touches an? overlap", na=False)]
    assert "sh" in set(hit.category) and "overlap in IU.KBL..BHE from" in hit.reason.iloc[0]
    # a duplicated stretch (same samples twice, as data centres often deliver) merges cleanly
    b = e.copy()
    b.trim(ev.time + t1, e.stats.endtime)
    st = obspy.Stream([tr for tr in obs if tr.stats.channel != "BHE"]) + a + b
    m = measure_event(ev, sta, {"IU.KBL": st}, syn, _cfg(), inventory=inv)
    w = _windows(m.table)
    pd.testing.assert_frame_equal(w[MEASURED], w0[MEASURED], check_exact=True)
    assert w.notes.str.contains("identical samples merged").all()


# ---------------------------------------------------------------- files, via the command
def _cli(*args):
    exe = Path(sys.executable).parent / "seisflows-eara"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=600)


def _table(path: Path) -> pd.DataFrame:
    """A measurements.csv with empty text cells as '' and empty numbers as NaN."""
    t = pd.read_csv(path)
    for c in t.columns:
        if t[c].dtype == object or t[c].isna().all():
            t[c] = t[c].fillna("").astype(str) if c not in MEASURED else t[c]
    return t


def _checksums(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def _measure(out: Path, cmt: Path, stations: Path, obs: Path, syn: Path, stage: int = 1,
             *extra: str):
    return _cli("measure", "--config", str(REPO / "parameters.yaml"), "--cmtsolution", str(cmt),
                "--stations", str(stations), "--observed", str(obs), "--synthetics", str(syn),
                "--stage", str(stage), "--output", str(out), *extra)


def test_bad_files_stay_local_kbl(kbl, tmp_path):
    """A FDSN-like folder (one MiniSEED per channel, StationXML beside them) for IU.KBL and a copy
    XX.KBL whose BHZ file is truncated, plus an empty file, a figure and the data of a station
    absent from STATIONS: exit 0, every file and station in the table, IU.KBL as measured alone,
    nothing under the input folders written."""
    ev, sta, obs, inv, syn, m0 = kbl
    o, s = tmp_path / "obs", tmp_path / "syn"
    o.mkdir()
    s.mkdir()
    for net in ("IU", "XX", "QQ"):
        for tr in _relabel(obs, network=net):
            tr.write(str(o / f"{tr.id}.mseed"), format="MSEED")
        for tr in _relabel(syn, network=net):
            tr.write(str(s / f"{tr.id}.mseed"), format="MSEED")
        x = copy.deepcopy(inv)
        x[0].code = net
        x.write(str(o / f"{net}.KBL.xml"), format="STATIONXML")
    raw = (o / "XX.KBL..BHZ.mseed").read_bytes()
    (o / "XX.KBL..BHZ.mseed").write_bytes(raw[:len(raw) // 2 + 100])     # cut inside a record
    (o / "XX.KBL.00.BHN.mseed").write_bytes(b"")
    (o / "waveforms.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    stations = tmp_path / "STATIONS"
    s0 = sta[0]
    stations.write_text("".join(f"KBL {n} {s0.latitude} {s0.longitude} 1920.0 0.0\n"
                                for n in ("IU", "XX", "YY")))
    before = _checksums(o, s)
    r = _measure(tmp_path / "out", DARF / "C201009031635A.xml", stations, o, s)
    assert r.returncode == 0, r.stderr
    assert _checksums(o, s) == before
    t = _table(tmp_path / "out" / "measurements.csv")
    code = t.network + "." + t.station

    def rows(c):
        return t[code == c]
    trunc = t[t.files == "XX.KBL..BHZ.mseed"]
    assert (trunc.status == "rejected").all() and trunc.reason.str.contains("damaged").all()
    assert (t[t.files == "XX.KBL.00.BHN.mseed"].reason.str.contains("empty file")).all()
    assert t[t.files == "waveforms.png"].status.tolist() == ["skipped"]
    xx = rows("XX.KBL")
    assert not (xx.status == "ok").any()
    assert xx[xx.files == "XX.KBL..BHE.mseed;XX.KBL..BHN.mseed"].reason.str.contains(
        "needs Z and N, E .*XX.KBL..BHZ.mseed.*damaged").all()        # the station names the file
    assert "no observed data" in rows("YY.KBL").reason.iloc[0]
    assert rows("QQ.KBL").reason.str.contains("not in STATIONS").all()
    found = {p.name for p in o.iterdir()} - {"IU.KBL.xml", "XX.KBL.xml", "QQ.KBL.xml"}
    listed = {f for fs in t.files for f in fs.split(";") if f}
    assert found <= listed                         # every data file has a row
    iu = _windows(rows("IU.KBL"))
    assert len(iu) == len(_windows(m0.table)) and (iu.location == "").all()
    np.testing.assert_allclose(iu[MEASURED].to_numpy(float),
                               _windows(m0.table)[MEASURED].to_numpy(float), rtol=1e-5, atol=1e-5)
    prov = pd.read_csv(tmp_path / "out" / "adjoint_provenance.csv")
    assert prov.observed_channels.tolist() == ["IU.KBL..BHE IU.KBL..BHN IU.KBL..BHZ"]


def _greece_folders(tmp_path: Path) -> tuple[Path, Path]:
    """Greece: observed SPECFEM ascii copied, synthetics written as a folder of SAC files."""
    from seisflows_eara.io.specfem_traces import read_synthetics
    o, s = tmp_path / "obs", tmp_path / "syn"
    shutil.copytree(GRC / "REF_SEIS", o)
    s.mkdir()
    ev = event_from_file(str(GRC / "CMTSOLUTION"))
    for tr in read_synthetics(str(GRC / "tiny_1d"), ev.time):
        tr.write(str(s / f"{tr.id}.sac"), format="SAC")
    return o, s


@pytest.mark.filterwarnings("ignore:Sample spacing read from SAC file")   # obspy #3408 rounding
def test_bad_files_stay_local_greece(tmp_path):
    """One bad number in one .sem.ascii file (named with its line), one synthetic component
    shorter than the others (named with its file), a figure among the data: exit 0, the other
    stations' measurements unchanged."""
    good = tmp_path / "good"
    o, s = _greece_folders(good)
    r = _measure(good / "out", GRC / "CMTSOLUTION", GRC / "STATIONS", o, s, 2)
    assert r.returncode == 0, r.stderr
    base = _table(good / "out" / "measurements.csv")
    codes = sorted(set(base.network + "." + base.station))
    bad = tmp_path / "bad"
    o, s = _greece_folders(bad)
    a, b = codes[0], codes[1]
    f = o / f"{a}.MXE.sem.ascii"
    lines = f.read_text().splitlines(keepends=True)
    lines[99] = lines[99].split()[0] + "  1.2.3e-9\n"
    f.write_text("".join(lines))
    short = obspy.read(str(s / f"{b.split('.')[0]}.{b.split('.')[1]}..MXN.sac"))
    short[0].data = short[0].data[:200]
    short.write(str(s / f"{b.split('.')[0]}.{b.split('.')[1]}..MXN.sac"), format="SAC")
    (o / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    before = _checksums(o, s)
    r = _measure(bad / "out", GRC / "CMTSOLUTION", GRC / "STATIONS", o, s, 2)
    assert r.returncode == 0, r.stderr
    assert _checksums(o, s) == before
    t = _table(bad / "out" / "measurements.csv")
    code = t.network + "." + t.station
    ra = t[code == a]
    assert not (ra.status == "ok").any()
    assert ra.reason.str.contains(f"{a}.MXE.sem.ascii, line 100").all()
    rb = t[code == b]
    assert not (rb.status == "ok").any() and \
        rb.reason.str.contains("do not share one time axis").any() and \
        rb.reason.str.contains(f"{b}..MXN.sac").any()
    assert t[t.files == "plot.png"].status.tolist() == ["skipped"]
    n = 0
    for c in codes[2:]:
        x, y = _windows(t[code == c]), _windows(base[base.network + "." + base.station == c])
        assert len(x) == len(y)
        n += len(x)
        np.testing.assert_allclose(x[MEASURED].to_numpy(float), y[MEASURED].to_numpy(float),
                                   rtol=1e-5, atol=1e-5)
    assert n >= 5


# ---------------------------------------------------------------- events
def test_quakeml_with_fdsn_resource_ids_gives_distinct_meaningful_names(tmp_path):
    text = (OKH / "quake.xml").read_text()
    assert "eventid=4218658" in text
    ev = event_from_file(str(OKH / "quake.xml"))
    assert ev.name == "C201305240544A"               # its GCMT id (spud moment tensor)
    # two FDSN events without a GCMT id: their eventid
    names = []
    for n in ("4218658", "4218659"):
        f = tmp_path / f"query_{n}.xml"
        f.write_text(text.replace("eventid=4218658", f"eventid={n}")
                     .replace("gcmtid/C201305240544A", "gcmtid/none"))
        names.append(event_from_file(str(f)).name)
    assert names == ["4218658", "4218659"]
    assert event_from_file(str(DARF / "C201009031635A.xml")).name == "C201009031635A"


def test_malformed_event_files_name_line_and_field(tmp_path):
    lines = (GRC / "CMTSOLUTION").read_text().splitlines(keepends=True)
    bad = tmp_path / "CMTSOLUTION"
    bad.write_text("".join(lines[:6] + ["depth:          -5.0\n"] + lines[7:]))
    with pytest.raises(CMTSolutionError, match=r"CMTSOLUTION, line 7: depth -5.0 km is above"):
        event_from_file(str(bad))
    bad.write_text("".join(lines[:4] + ["latitude:       36.9x\n"] + lines[5:]))
    with pytest.raises(CMTSolutionError, match=r"line 5: 'latitude:' is not followed by one"):
        event_from_file(str(bad))
    nameless = tmp_path / "CMTSOLUTION_EV7"
    nameless.write_text("".join(lines[:1] + ["event name:\n"] + lines[2:]))
    assert event_from_file(str(nameless)).name == "EV7"


def test_asdf_and_massdownloader_layouts_read_as_the_files_themselves(kbl, tmp_path):
    """The record in an ASDF file (with its StationXML), and in MassDownloader's waveforms/ +
    stations/ folders: the same traces and inventory, the same measurement."""
    import pyasdf
    from seisflows_eara.io.specfem_traces import read_synthetics
    from seisflows_eara.io.waveforms import read_synthetic_data, read_waveforms
    ev, sta, obs, inv, syn, m0 = kbl
    with pyasdf.ASDFDataSet(str(tmp_path / "obs.h5"), mode="w") as ds:
        ds.add_waveforms(obs, tag="raw_recording")
        ds.add_stationxml(inv)
    (tmp_path / "md" / "waveforms").mkdir(parents=True)
    (tmp_path / "md" / "stations").mkdir()
    for tr in obs:
        tr.write(str(tmp_path / "md" / "waveforms" / f"{tr.id}__20100903T163057Z.mseed"),
                 format="MSEED")
    inv.write(str(tmp_path / "md" / "stations" / "IU.KBL.xml"), format="STATIONXML")
    for where in ("obs.h5", "md"):
        d = read_waveforms(str(tmp_path / where), ev.time)
        assert len(d.stream) == 3 and d.inventory is not None and not d.notes
        m = measure_event(ev, sta, {"IU.KBL": d.stream}, syn, _cfg(), inventory=d.inventory)
        pd.testing.assert_frame_equal(_windows(m.table)[MEASURED], _windows(m0.table)[MEASURED],
                                      check_exact=True)
    # synthetics: a folder of SAC files reads as the MiniSEED file does
    (tmp_path / "sac").mkdir()
    for tr in syn:
        tr.write(str(tmp_path / "sac" / f"{tr.id}.sac"), format="SAC")
    a = read_synthetics(str(tmp_path / "sac"), ev.time)
    b = read_synthetic_data(str(tmp_path / "sac"), ev.time).stream
    assert len(a) == len(b) == 3
    for x, y in zip(sorted(a, key=lambda t: t.id), sorted(syn, key=lambda t: t.id)):
        np.testing.assert_array_equal(x.data, y.data)


def test_the_preprocess_plugin_keeps_going_past_a_bad_file(tmp_path):
    """In a SeisFlows event directory: a damaged observed file and a note among the data; the
    event task writes its table, residuals and every station's adjoint sources."""
    from seisflows_eara.plugins.preprocess import EaraNzcc
    cwd = tmp_path / "scratch" / "solver" / "EV"
    (cwd / "DATA").mkdir(parents=True)
    shutil.copy(GRC / "CMTSOLUTION", cwd / "DATA" / "CMTSOLUTION")
    shutil.copy(GRC / "STATIONS", cwd / "DATA" / "STATIONS")
    shutil.copytree(GRC / "REF_SEIS", cwd / "traces" / "obs")
    shutil.copytree(GRC / "tiny_1d", cwd / "traces" / "syn")
    bad = sorted((cwd / "traces" / "obs").glob("*.MXZ.sem.ascii"))[0]
    bad.write_text(bad.read_text()[:4000] + "garbage line\n")
    (cwd / "traces" / "obs" / "README.md").write_text("downloaded 2024\n")
    pre = EaraNzcc(workdir=str(tmp_path), path_solver=str(tmp_path / "scratch" / "solver"),
                   path_output=str(tmp_path / "output"))
    res = tmp_path / "residuals.txt"
    m = pre.quantify_misfit(source_name="EV", save_residuals=str(res),
                            save_adjsrcs=str(cwd / "traces" / "adj"), iteration=1, step_count=0)
    n = len((GRC / "STATIONS").read_text().splitlines())
    assert len(list((cwd / "traces" / "adj").glob("*.adj"))) == 3 * n
    t = pre.load_table("i01s00", "EV")
    code = ".".join(bad.name.split(".")[:2])
    mine = t[(t.network + "." + t.station) == code]
    assert not (mine.status == "ok").any()
    assert mine.reason.str.contains(f"{bad.name}, line ").all()
    assert (t.status == "skipped").sum() == 1 and (t.status == "ok").sum() >= 5
    assert np.isclose(pre.sum_residuals(np.loadtxt(res)), m.misfit)
