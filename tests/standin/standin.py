"""A stand-in for SPECFEM3D_GLOBE's xmeshfem3D / xspecfem3D used by the workflow tests.

It reads and writes the real program's files — DATA/Par_file, DATA/CMTSOLUTION, DATA/STATIONS,
DATA/GLL/proc000000_reg1_<par>.bin (MODEL = GLL), DATABASES_MPI/, OUTPUT_FILES/*.sem.ascii,
SEM/*.adj, kernels proc000000_reg1_<name>_kernel.bin and OUTPUT_FILES/src_frechet.000001 — on the
REAL mesh of shared/fixtures/specfem3d_globe_tiny, with a toy physics whose derivatives are exact:

  u(t) = Σ_phase A_phase(M, geometry) · ṁ(t − T_phase),  phases P and S (whole-space far field,
  Aki & Richards 4.29), ṁ a unit-area Gaussian moment rate,
  T_phase = t_c + T_ak135(Δ, depth) · (1 − <δln v>_ray),
  <δln v>_ray = Σ_p w_p ln(v_p / v_ref,p) / Σ_p w_p, w_p a Gaussian tube around the source-station
  chord; P senses vpv, SV (Z, R) vsv, SH (T) vsh.

Kernels follow SPECFEM's convention (δχ = ∫ K δln m dV, one value per GLL point, i.e. the point
derivative divided by the point's volume); the approximate Hessian is Σ (∂u/∂ln m_p)² / V_p.
Source derivatives follow SPECFEM's src_frechet layout (frechet_standin.py).

Configuration: DATA/standin.json {"mesh": solver_data.bin, "reference": dir of reference GLL files,
"initial": dir of the model used when MODEL is not GLL}. Optional env STANDIN_FAIL_EVENT (exit 1
for that event) and STANDIN_KILL_AFTER=<count file>:<N> (at the N-th run, SIGKILL the process
group — the `seisflows submit` master started in its own session — as a crash would).
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import obspy
from obspy.geodetics import locations2degrees
from obspy.taup import TauPyModel

from specfem_files import read_gll, read_mesh, write_gll

R_EARTH = 6371.0
PARS = ("vpv", "vph", "vsv", "vsh", "eta", "rho")
DT = 0.25
T_START = -10.0
PULSE = 5.0        # s, Gaussian moment-rate standard deviation
TUBE = 150.0       # km, Gaussian half-width of the sensitivity tube around the chord
RHO, ALPHA, BETA = 3300.0, 8000.0, 4500.0


#: the Par_file every run reads: DATA/Par_file (of the launch directory for simultaneous runs)
PAR_FILE = Path("DATA/Par_file")


def par(key: str) -> str:
    text = PAR_FILE.read_text()
    m = re.search(rf"^{key}\s*=\s*([^#\n]*)", text, re.M)
    return m.group(1).strip() if m else ""


def config() -> dict:
    return json.loads(Path("DATA/standin.json").read_text())


def local_path() -> Path:
    return Path(par("LOCAL_PATH") or "DATABASES_MPI")


# ---------------------------------------------------------------------------------------- mesher
def mesher() -> None:
    cfg = config()
    src = Path("DATA/GLL") if par("MODEL").upper() == "GLL" else Path(cfg["initial"])
    out = local_path()
    out.mkdir(parents=True, exist_ok=True)
    for p in PARS:
        write_gll(out / f"proc000000_reg1_{p}.bin", read_gll(src / f"proc000000_reg1_{p}.bin"))
    link = out / "proc000000_reg1_solver_data.bin"
    if not link.exists():
        link.symlink_to(Path(cfg["mesh"]).resolve())
    Path("OUTPUT_FILES").mkdir(exist_ok=True)
    Path("OUTPUT_FILES/output_mesher.txt").write_text("stand-in mesher: model from %s\n" % src)


# ---------------------------------------------------------------------------------------- physics
class Toy:
    def __init__(self):
        cfg = config()
        self.mesh = read_mesh(cfg["mesh"])
        self.xyz = self.mesh.xyz.reshape(-1, 3)
        self.vol = self.mesh.volume.reshape(-1)
        model = {p: read_gll(local_path() / f"proc000000_reg1_{p}.bin").astype(float) for p in PARS}
        ref = {p: read_gll(Path(cfg["reference"]) / f"proc000000_reg1_{p}.bin").astype(float)
               for p in PARS}
        self.dln = {p: np.log(model[p] / ref[p]) for p in ("vpv", "vsv", "vsh")}
        ev = obspy.read_events("DATA/CMTSOLUTION")[0]
        org = next(o for o in ev.origins if str(o.origin_type) == "centroid")
        self.src_lat, self.src_lon, self.src_dep = org.latitude, org.longitude, org.depth / 1000.0
        # one source: SPECFEM sets its time shift to zero and the records start relative to the
        # centroid time (get_cmt.f90), so a changed origin time moves only the time reference
        self.tshift = 0.0
        t = ev.focal_mechanisms[0].moment_tensor.tensor
        self.m6 = np.array([t.m_rr, t.m_tt, t.m_pp, t.m_rt, t.m_rp, t.m_tp])   # N m
        self.stations = [line.split() for line in Path("DATA/STATIONS").read_text().splitlines()
                         if line.strip()]
        minutes = float(par("RECORD_LENGTH_IN_MINUTES").replace("d", "e"))
        self.t = T_START + DT * np.arange(int(minutes * 60 / DT))
        self.taup = TauPyModel("ak135")

    # geometry -------------------------------------------------------------------------------
    @staticmethod
    def cart(lat, lon, depth_km):
        r = R_EARTH - depth_km
        la, lo = np.radians(lat), np.radians(lon)
        return r * np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])

    @staticmethod
    def local_frame(lat, lon):
        """Unit vectors (r, θ=south, φ=east) and (N, E, Z) at a point, global Cartesian."""
        la, lo = np.radians(lat), np.radians(lon)
        up = np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
        east = np.array([-np.sin(lo), np.cos(lo), 0.0])
        north = np.cross(up, east)
        return up, north, east

    def moment_cartesian(self, m6):
        """CMT (r, θ, φ) components -> 3×3 tensor in global Cartesian at the source."""
        up, north, east = self.local_frame(self.src_lat, self.src_lon)
        south = -north
        mrr, mtt, mpp, mrt, mrp, mtp = m6
        m = np.array([[mrr, mrt, mrp], [mrt, mtt, mtp], [mrp, mtp, mpp]])
        b = np.stack([up, south, east], axis=1)          # columns: r, θ, φ
        return b @ m @ b.T

    def tube(self, a, b):
        """Normalized Gaussian weights of the mesh points around the chord a -> b."""
        ab = b - a
        s = np.clip((self.xyz - a) @ ab / (ab @ ab), 0.0, 1.0)
        d2 = np.sum((self.xyz - (a + s[:, None] * ab)) ** 2, axis=1)
        w = np.exp(-d2 / TUBE ** 2)
        return w / w.sum()

    def pulse(self, tau, derivative=0):
        x = (self.t - tau) / PULSE
        g = np.exp(-0.5 * x ** 2) / (PULSE * np.sqrt(2 * np.pi))
        return g if derivative == 0 else -x / PULSE * g

    def arrivals(self):
        """Per station: [(phase, ref time, weights, sensed param per component, amplitude vectors)]."""
        out = []
        a = self.cart(self.src_lat, self.src_lon, self.src_dep)
        mc = self.moment_cartesian(self.m6)
        for row in self.stations:
            sta, net, lat, lon = row[0], row[1], float(row[2]), float(row[3])
            b = self.cart(lat, lon, 0.0)
            r = np.linalg.norm(b - a) * 1000.0
            g = (b - a) / np.linalg.norm(b - a)
            up, north, east = self.local_frame(lat, lon)
            dist = locations2degrees(self.src_lat, self.src_lon, lat, lon)
            w = self.tube(a, b)
            arr = {}
            for ph in ("P", "S"):
                tt = self.taup.get_travel_times(self.src_dep, dist, [ph, ph.lower()])
                arr[ph] = min(x.time for x in tt)
            up_p = g @ mc @ g / (4 * np.pi * RHO * ALPHA ** 3 * r) * g
            up_s = (mc @ g - (g @ mc @ g) * g) / (4 * np.pi * RHO * BETA ** 3 * r)
            nez = np.stack([north, east, up])
            out.append((net, sta, lat, lon, w, arr, nez @ up_p, nez @ up_s))
        return out

    def seismograms(self):
        """{(net, sta): (3, nt) N, E, Z} and the pieces the adjoint runs need."""
        syn, parts = {}, {}
        for net, sta, lat, lon, w, arr, ap, as_ in self.arrivals():
            u = np.zeros((3, self.t.size))
            baz_t = self._transverse(lat, lon)
            p = []
            # P: vpv; S splits into SV (vsv) and SH (vsh) by projection on the transverse direction
            ash = (as_[:2] @ baz_t) * np.array([baz_t[0], baz_t[1], 0.0])
            asv = as_ - ash
            for ph, amp, key in (("P", ap, "vpv"), ("S", asv, "vsv"), ("S", ash, "vsh")):
                tref = arr[ph]
                lnv = float(w @ self.dln[key])
                tau = self.tshift + tref * (1.0 - lnv)
                u += amp[:, None] * self.pulse(tau)[None, :]
                p.append((amp, tau, tref, key))
            syn[(net, sta)] = u
            parts[(net, sta)] = (w, p)
        return syn, parts

    def _transverse(self, lat, lon):
        """Unit transverse direction (N, E components) at the station."""
        from obspy.geodetics import gps2dist_azimuth
        baz = np.radians(gps2dist_azimuth(self.src_lat, self.src_lon, lat, lon)[2])
        # radial points away from the source: (−cos baz, −sin baz); transverse = R rotated +90°
        return np.array([np.sin(baz), -np.cos(baz)])


def write_traces(syn: dict, t: np.ndarray) -> None:
    """*.sem.ascii and/or (OUTPUT_SEISMOS_ASDF) SPECFEM's synthetic.h5 with output_solver.txt."""
    out = Path("OUTPUT_FILES")
    out.mkdir(exist_ok=True)
    for (net, sta), u in syn.items():
        for i, c in enumerate("NEZ"):
            if par("OUTPUT_SEISMOS_ASCII_TEXT").lower() != ".false.":
                np.savetxt(out / f"{net}.{sta}.MX{c}.sem.ascii", np.column_stack([t, u[i]]),
                           fmt="%14.6f %18.8e")
    if par("OUTPUT_SEISMOS_ASDF").lower() == ".true.":     # writes OUTPUT_FILES/synthetic.h5
        from specfem_asdf_files import header_time, solver_log_lines, write_specfem_asdf
        name = re.search(r"event name:\s*(\S+)", Path("DATA/CMTSOLUTION").read_text()).group(1)
        comps = {f"{net}.{sta}": {f"MX{c}": u[i] for i, c in enumerate("NEZ")}
                 for (net, sta), u in syn.items()}
        write_specfem_asdf(out / "synthetic.h5", comps, header_time("DATA/CMTSOLUTION"), name, DT,
                           PAR_FILE.read_text())
        (out / "output_solver.txt").write_text(solver_log_lines(DT, t.size, float(t[0])))


def read_adjoint(net: str, sta: str, nt: int) -> np.ndarray:
    a = np.zeros((3, nt))
    for i, c in enumerate("NEZ"):
        f = Path("SEM") / f"{net}.{sta}.MX{c}.adj"
        if f.exists():
            a[i] = np.loadtxt(f)[:nt, 1]
    return a


#: what SPECFEM's SAVE_FORWARD run leaves for the kernel run (save_forward_arrays.f90: the last
#: frame in LOCAL_TMP_PATH; prepare_timerun.f90: Stacey boundary buffers in LOCAL_PATH)
SAVED_WAVEFIELD = ("proc000000_save_forward_arrays.bin", "proc000000_reg1_absorb_xmin.bin")


def forward() -> None:
    toy = Toy()
    syn, _ = toy.seismograms()
    write_traces(syn, toy.t)
    if par("SAVE_FORWARD").lower() == ".true.":
        for name in SAVED_WAVEFIELD:
            (local_path() / name).write_bytes(np.asarray(toy.t).tobytes())


def kernels() -> None:
    """δχ/δln v_p = Σ_st Σ_ph (∫ adj·∂u/∂τ dt)(∂τ/∂ln v_p), ∂τ/∂ln v_p = −T_ref w_p."""
    for name in SAVED_WAVEFIELD:        # SPECFEM: exit_MPI 'Error open file save_forward_arrays'
        if not (local_path() / name).exists():
            raise SystemExit(f"Error: opening {local_path() / name} (no saved forward wavefield)")
    toy = Toy()
    _, parts = toy.seismograms()
    n = toy.xyz.shape[0]
    k = {p: np.zeros(n) for p in ("vpv", "vsv", "vsh")}
    hess = np.zeros(n)
    for (net, sta), (w, phases) in parts.items():
        adj = read_adjoint(net, sta, toy.t.size)
        for amp, tau, tref, key in phases:
            du_dtau = -amp[:, None] * toy.pulse(tau, 1)[None, :]
            c = float(np.sum(adj * du_dtau) * DT)
            k[key] += c * (-tref) * w
            hess += float(np.sum(du_dtau ** 2) * DT) * (tref * w) ** 2
    local = local_path()
    # SPECFEM transverse kernels (alpha = vp, beta = vs); eta and rho unaffected by this physics;
    # bulk kernels as save_kernels.F90 forms them (kappa from vpv, vsv; kappa_v = kappa_h)
    m = {p: read_gll(local / f"proc000000_reg1_{p}.bin").astype(float) for p in ("vpv", "vsv", "vsh")}
    bulk_sq = m["vpv"] ** 2 - 4 / 3 * m["vsv"] ** 2
    av2, ah2 = bulk_sq + 4 / 3 * m["vsv"] ** 2, bulk_sq + 4 / 3 * m["vsh"] ** 2
    ka, kah = k["vpv"], 0 * hess
    named = {"alphav": ka, "alphah": kah, "betav": k["vsv"], "betah": k["vsh"],
             "eta": 0 * hess, "rho": 0 * hess, "hess": hess,
             "bulk_c": bulk_sq / av2 * ka + bulk_sq / ah2 * kah,
             "bulk_betav": k["vsv"] + 4 / 3 * m["vsv"] ** 2 / av2 * ka,
             "bulk_betah": k["vsh"] + 4 / 3 * m["vsh"] ** 2 / ah2 * kah}
    for name, val in named.items():
        write_gll(local / f"proc000000_reg1_{name}_kernel.bin", (val / toy.vol).astype(np.float32))


def main() -> int:
    """SPECFEM v7.0.x's layout for NUMBER_OF_SIMULTANEOUS_RUNS = N: the launch directory's
    DATA/Par_file read by every run (a run0001/DATA/Par_file beside it is refused), each run in its
    run000k/ directory (here one after the other); N > 1 without the run directories stops
    without output, as SPECFEM does when the MPI size is not a multiple of N."""
    global PAR_FILE
    launch = Path.cwd()
    if (par("NUMBER_OF_SIMULTANEOUS_RUNS") or "1") != "1":
        n = int(par("NUMBER_OF_SIMULTANEOUS_RUNS"))
        if Path("run0001/DATA/Par_file").exists():
            print("cannot have both DATA/Par_file and run0001/DATA/Par_file present")
            return 0
        if not Path(f"run{n:04d}").is_dir():       # a single run: MPI size not a multiple of N
            print("the number of MPI processes is not a multiple of NUMBER_OF_SIMULTANEOUS_RUNS")
            return 0
        PAR_FILE = launch / "DATA" / "Par_file"
        with open(launch / "simultaneous_launches.log", "a") as f:
            f.write(f"{Path(sys.argv[0]).name} {n}\n")
        rc = 0
        for k in range(1, n + 1):
            os.chdir(launch / f"run{k:04d}")
            try:
                rc = rc or one_run()
            finally:
                os.chdir(launch)
        return rc
    return one_run()


def one_run() -> int:
    exe = Path(sys.argv[0]).name
    fail = os.environ.get("STANDIN_FAIL_EVENT")
    if fail and fail in Path("DATA/CMTSOLUTION").read_text():
        print(f"stand-in: failing on purpose for {fail}", file=sys.stderr)
        return 1
    kill = os.environ.get("STANDIN_KILL_AFTER")
    if kill:
        counter, limit = kill.rsplit(":", 1)
        n = int(Path(counter).read_text()) + 1 if Path(counter).exists() else 1
        Path(counter).write_text(str(n))
        if n == int(limit):     # the whole process group: the master and this task die
            os.killpg(os.getpgid(0), signal.SIGKILL)
    if exe.startswith("xmeshfem3D"):
        mesher()
        return 0
    simtype = int(par("SIMULATION_TYPE"))
    if simtype == 1:
        forward()
    elif simtype == 3:
        kernels()
    elif simtype == 2:
        from frechet_standin import source_derivatives
        source_derivatives(Toy, read_adjoint, DT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
