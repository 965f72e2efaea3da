"""A tiny regional EARA inversion on REAL SPECFEM3D_GLOBE through `seisflows submit` (issue 9).

Needs SPECFEM_BIN (the OUT_DIR of scripts/build_specfem_tiny.sh; its MODEL = GLL build gll/:
xmeshfem3D, xspecfem3D_type{1,2,3}, Par_file) and SPECFEM_DATA (SPECFEM's DATA folder, for crust2.0
and the s362ani mesh); skipped with the reason otherwise. ~1 h on one core, so it has its own
marker (specfem_inversion) besides specfem; run with
    SPECFEM_BIN=... SPECFEM_DATA=... python -m pytest -m specfem_inversion -s tests/test_specfem_inversion.py

The world: the mesh of MODEL = GLL (the 1DREF/s362ani mesh of one 20°x20° chunk, NEX 32), the
initial model STW105 on it (seisflows_eara.model), the true model the same with a Gaussian +6 % Vsv
anomaly; two events (the real GCMT solution of the 2008 southern Greece event and a second one),
nine stations; "observed" data simulated with SPECFEM from the true model and true sources. The
inversion starts from the 1-D model and perturbed sources (centroid moved 10 km north and 5 km down,
1.5 s late, moment tensor rotated and scaled): 1 source + 2 structure iterations, killed in the
middle of the first structure line search and resumed with `seisflows submit`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from test_workflow import _event_misfit, _history, _seisflows, _simulations  # noqa: E402

from seisflows_eara.io.cmtsolution import read_cmtsolution, write_cmtsolution  # noqa: E402
from seisflows_eara.io.specfem_traces import read_synthetics  # noqa: E402
from seisflows_eara.kernels import geographic_to_xyz  # noqa: E402
from seisflows_eara.model import read_mesh  # noqa: E402
from seisflows_eara.model.gll import read_gll, write_gll  # noqa: E402
from seisflows_eara.model.parametrization import reference_model  # noqa: E402
from specfem_build import SPECFEM_DATA, marks, mesh_bin, problem  # noqa: E402

BINARIES = ("xmeshfem3D", "xspecfem3D_type1", "xspecfem3D_type3", "xspecfem3D_type2")
#: SPECFEM DATA folders the MODEL = GLL mesher reads (CRUST2.0 Moho, S362ANI reference)
DATA_DIRS = ("crust2.0", "s362ani")
#: the MODEL = GLL build of SPECFEM_BIN (tests/specfem_build.py), "" when it is not usable
GLL_PROBLEM = problem("gll", *BINARIES, "Par_file", data_dirs=DATA_DIRS)
SPECFEM_BIN = "" if GLL_PROBLEM else str(mesh_bin("gll"))
pytestmark = [*marks("gll", *BINARIES, "Par_file", data_dirs=DATA_DIRS),
              pytest.mark.specfem_inversion]

PARS = ("vpv", "vph", "vsv", "vsh", "eta", "rho")
GREECE = REPO / "tests" / "data" / "regional_greece" / "CMTSOLUTION"
STATIONS = [("LIT", "HT", 40.1008, 22.4900), ("ZKR", "GE", 35.1147, 26.2170),
            ("S001", "XS", 37.2830, 21.7180), ("T01", "XX", 45.0, 20.0), ("T02", "XX", 44.0, 30.0),
            ("T03", "XX", 38.0, 30.0), ("T04", "XX", 33.0, 24.0), ("T05", "XX", 46.5, 25.5),
            ("T06", "XX", 41.0, 18.0)]
ANOMALY = dict(lat=39.5, lon=25.0, depth=100.0, radius=200.0, amplitude=0.06)
#: stand-in invocation at which the master is killed: EV2's solver of the first trial forward
#: (mesher+forward x2, source adjoint x2, perturbed forward x2, forward x2, kernel x2,
#: trial mesher+forward of EV1, trial mesher of EV2, then EV2's trial solver)
KILL_AT = 16
ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMPI_MCA_rmaps_base_oversubscribe": "1"}


def _set_par(path: Path, **values: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    for key, val in values.items():
        for i, line in enumerate(lines):
            if line.split("=")[0].strip() == key:
                lines[i] = f"{key:<32}= {val}\n"
                break
        else:
            raise KeyError(f"{key} not in {path}")
    path.write_text("".join(lines))


def _run(exe: str, cwd: Path, log: str) -> float:
    t = time.time()
    with open(cwd / log, "w") as f:
        subprocess.run([str(Path(SPECFEM_BIN) / exe)], cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                       check=True, env={**os.environ, **ENV})
    return time.time() - t


def _run_dir(root: Path, name: str, model: str = "GLL") -> Path:
    d = root / name
    for sub in ("DATA", "OUTPUT_FILES", "DATABASES_MPI"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(SPECFEM_BIN) / "Par_file", d / "DATA" / "Par_file")
    _set_par(d / "DATA" / "Par_file", MODEL=model, SIMULATION_TYPE="1", SAVE_FORWARD=".false.")
    for name in DATA_DIRS:
        os.symlink(Path(SPECFEM_DATA) / name, d / "DATA" / name)
    (d / "DATA" / "STATIONS").write_text(_stations_text())
    shutil.copy(GREECE, d / "DATA" / "CMTSOLUTION")        # the mesher reads it too
    return d


def _stations_text() -> str:
    return "".join(f"{s:<6s} {n:<3s} {la:9.4f} {lo:9.4f} 0.0 0.0\n" for s, n, la, lo in STATIONS)


def _true_sources():
    ev1 = read_cmtsolution(GREECE).with_values(event_name="EV1")
    ev2 = ev1.with_values(event_name="EV2", latitude=41.5, longitude=28.0, depth=30.0,
                          moment=np.array([1.0e24, -1.2e25, 1.1e25, 2.0e24, -3.0e24, 8.0e24]))
    return {"EV1": ev1, "EV2": ev2}


def _perturbed(src):
    """Centroid 10 km north and 5 km deeper, 1.5 s late, moment tensor rotated 10° about the
    vertical and scaled by 1.2."""
    m = src.moment
    c, s = np.cos(np.radians(10.0)), np.sin(np.radians(10.0))
    t = np.array([[m[0], m[3], m[4]], [m[3], m[1], m[5]], [m[4], m[5], m[2]]])
    r = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    t = 1.2 * r @ t @ r.T
    moment = np.array([t[0, 0], t[1, 1], t[2, 2], t[0, 1], t[0, 2], t[1, 2]])
    return src.with_values(latitude=src.latitude + 10.0 / 111.2, depth=src.depth + 5.0,
                           time_shift=src.time_shift + 1.5, moment=moment)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    cache = os.environ.get("EARA_SPECFEM_CACHE")     # reuse the simulated world between runs
    root = Path(cache) if cache else tmp_path_factory.mktemp("specfem_world")
    root.mkdir(parents=True, exist_ok=True)
    if (root / "world.json").exists():
        return _load_world(root)
    for old in root.iterdir():
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    timing = {}
    # the mesh of MODEL = GLL is s362ani's (1DREF discontinuities, CRUST2.0 Moho): mesh it once
    mesh_dir = _run_dir(root, "mesh_s362ani", model="s362ani")
    timing["mesher_s362ani_s"] = _run("xmeshfem3D", mesh_dir, "mesher.log")
    mesh_file = mesh_dir / "DATABASES_MPI" / "proc000000_reg1_solver_data.bin"
    mesh = read_mesh(mesh_file)
    init, true = root / "model_init", root / "model_true"
    init.mkdir(), true.mkdir()
    ref = reference_model(mesh)
    c = geographic_to_xyz(ANOMALY["lat"], ANOMALY["lon"], ANOMALY["depth"])[0]
    gauss = np.exp(-np.sum((mesh.xyz - c) ** 2, axis=1) / ANOMALY["radius"] ** 2)
    for p in PARS:
        write_gll(init / f"proc000000_reg1_{p}.bin", ref[p].astype(np.float32))
        v = ref[p] * (1 + ANOMALY["amplitude"] * gauss) if p == "vsv" else ref[p]
        write_gll(true / f"proc000000_reg1_{p}.bin", v.astype(np.float32))
    # observed: SPECFEM with the true model and the true sources
    obs_run = _run_dir(root, "observed_run")
    shutil.copytree(true, obs_run / "DATA" / "GLL")
    sources = _true_sources()
    write_cmtsolution(obs_run / "DATA" / "CMTSOLUTION", sources["EV1"])
    timing["mesher_gll_s"] = _run("xmeshfem3D", obs_run, "mesher.log")
    obs = root / "observed"
    for ev, src in sources.items():
        write_cmtsolution(obs_run / "DATA" / "CMTSOLUTION", src)
        timing[f"observed_forward_{ev}_s"] = _run("xspecfem3D_type1", obs_run, f"forward_{ev}.log")
        (obs / ev).mkdir(parents=True)      # absolute times: the true centroid time
        st = read_synthetics(str(obs_run / "OUTPUT_FILES"), src.centroid_time)
        assert len(st) == 3 * len(STATIONS), (ev, len(st))
        st.write(str(obs / ev / f"{ev}.mseed"), format="MSEED", encoding="FLOAT64")
        for f in (obs_run / "OUTPUT_FILES").glob("*.sem.ascii"):
            f.unlink()
    (root / "world.json").write_text(json.dumps(timing))
    return _load_world(root)


def _load_world(root: Path) -> dict:
    mesh = read_mesh(root / "mesh_s362ani" / "DATABASES_MPI" / "proc000000_reg1_solver_data.bin")
    c = geographic_to_xyz(ANOMALY["lat"], ANOMALY["lon"], ANOMALY["depth"])[0]
    gauss = np.exp(-np.sum((mesh.xyz - c) ** 2, axis=1) / ANOMALY["radius"] ** 2)
    return dict(root=root, mesh=mesh, init=root / "model_init", true=root / "model_true",
                obs=root / "observed", gauss=gauss, sources=_true_sources(),
                timing=json.loads((root / "world.json").read_text()))


def _wrapped_bin(folder: Path) -> Path:
    """path_specfem_bin: scripts that count invocations, SIGKILL the master's process group at the
    EARA_KILL_AT-th (a crash of the master mid line search) and otherwise exec the real binary."""
    folder.mkdir(parents=True)
    for name in BINARIES:
        exe = folder / name
        exe.write_text(
            "#!/bin/bash\n"
            'if [ -n "$EARA_COUNT_FILE" ]; then\n'
            '  n=$(( $(cat "$EARA_COUNT_FILE" 2>/dev/null || echo 0) + 1 )); echo $n > "$EARA_COUNT_FILE"\n'
            '  if [ "$n" = "$EARA_KILL_AT" ]; then kill -9 -- -$(ps -o pgid= -p $$ | tr -d " "); fi\n'
            "fi\n"
            f'exec {Path(SPECFEM_BIN).resolve() / name} "$@"\n')
        exe.chmod(0o755)
    return folder


def _project(world: dict, tmp: Path) -> Path:
    data = tmp / "specfem_data"
    data.mkdir()
    shutil.copy(Path(SPECFEM_BIN) / "Par_file", data / "Par_file")
    _set_par(data / "Par_file", MODEL="gll")         # SeisFlows' check wants lower case
    (data / "STATIONS").write_text(_stations_text())
    for name in DATA_DIRS:
        shutil.copytree(Path(SPECFEM_DATA) / name, data / name)
    for ev, src in world["sources"].items():
        write_cmtsolution(data / f"CMTSOLUTION_{ev}", _perturbed(src))
    par = yaml.safe_load((REPO / "parameters.yaml").read_text())
    par.update(system="workstation", ntask=len(world["sources"]), nproc=1, mpiexec=None,
               path_specfem_bin=str(_wrapped_bin(tmp / "bin")), path_specfem_data=str(data),
               path_model_init=str(world["init"]), path_data=str(world["obs"]),
               stage_body_bands=[[30.0, 80.0]], stage_surface_bands=[[40.0, 120.0]],
               stage_source_iterations=[1], stage_structure_iterations=[2],
               categories=["pz", "pr", "sh"], export_vtk=False,
               specfem_mesher_binary="xmeshfem3D",
               specfem_solver_binaries=["xspecfem3D_type1", "xspecfem3D_type3", "xspecfem3D_type2"],
               observed_displacement=True)      # the "observed" are SPECFEM displacement
    (tmp / "parameters.yaml").write_text(yaml.safe_dump(par, sort_keys=False))
    return tmp


@pytest.fixture(scope="module")
def run(world, tmp_path_factory) -> dict:
    work = _project(world, tmp_path_factory.mktemp("specfem_run"))
    env = {**ENV, "EARA_COUNT_FILE": str(work / "count.txt"), "EARA_KILL_AT": str(KILL_AT)}
    exe = str(Path(sys.executable).with_name("seisflows"))
    t0 = time.time()
    p = subprocess.run([exe, "submit"], cwd=work, capture_output=True, text=True, timeout=6 * 3600,
                       env={**os.environ, **env}, start_new_session=True)
    t1 = time.time()
    if not (work / "output" / "simulations.log").exists():
        raise AssertionError(f"the first submit ran no simulation:\n{p.stdout[-3000:]}\n"
                             f"{p.stderr[-3000:]}")
    killed = _simulations(work)
    _seisflows(["submit"], work, env={**ENV, "EARA_COUNT_FILE": str(work / "count_resume.txt")},
               timeout=6 * 3600)
    t2 = time.time()
    return dict(work=work, killed_rc=p.returncode, killed=killed,
                wall_first_s=t1 - t0, wall_resume_s=t2 - t1)


def _source_error(src, true) -> tuple[float, float]:
    from obspy.geodetics import gps2dist_azimuth
    h = gps2dist_azimuth(src.latitude, src.longitude, true.latitude, true.longitude)[0] / 1000.0
    return float(np.hypot(h, src.depth - true.depth)), abs(src.centroid_time - true.centroid_time)


def _mechanism_distance(src, true) -> float:
    """|m/|m| − m_true/|m_true|| of the six CMTSOLUTION numbers (NZCC cannot see the scale)."""
    a, b = np.asarray(src.moment, float), np.asarray(true.moment, float)
    return float(np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b)))


def test_tiny_inversion_on_real_specfem(world, run):
    work = run["work"]
    summary = dict(timing=world["timing"], wall_first_s=run["wall_first_s"],
                   wall_resume_s=run["wall_resume_s"])
    # killed in the middle of the first structure line search, resumed without repeating anything
    assert run["killed_rc"] != 0
    assert "stage1/structure01/trial_forward EV1 forward" in run["killed"]
    assert not any(s.startswith("stage1/structure01/trial_forward EV2") for s in run["killed"])
    sims = _simulations(work)
    assert len(sims) == len(set(sims)), "a finished simulation was repeated"
    for ev in world["sources"]:
        kinds = sorted(s.split()[2] for s in sims if s.split()[1] == ev)
        assert kinds == ["forward"] * 7 + ["kernel"] * 2 + ["source_adjoint"], (ev, kinds)
    # the misfit falls every iteration (source, structure 1, structure 2, final)
    h = _history(work)
    total = h[h.category == "total"]
    chain = np.concatenate([total[total.kind == "source"].misfit.to_numpy(),
                            total[total.kind == "structure"].sort_values("iteration").misfit.to_numpy(),
                            total[total.kind == "final"].misfit.to_numpy()])
    summary["misfit"] = chain.tolist()
    summary["history"] = h.to_dict(orient="records")
    summary["misfit_per_category_first_final"] = {
        cat: [float(g[g.kind == "source"].misfit.iloc[0]), float(g[g.kind == "final"].misfit.iloc[-1])]
        for cat, g in h[h.category != "total"].groupby("category")
        if (g.kind == "source").any() and (g.kind == "final").any()}
    # the sources move toward the true ones
    summary["sources"] = {}
    for ev, true in world["sources"].items():
        start = _perturbed(true)
        final = read_cmtsolution(work / "output" / "sources" / ev / "CMTSOLUTION_current")
        d0, t0 = _source_error(start, true)
        d1, t1 = _source_error(final, true)
        m0, m1 = _mechanism_distance(start, true), _mechanism_distance(final, true)
        summary["sources"][ev] = dict(location_km=[d0, d1], time_s=[t0, t1], mechanism=[m0, m1])
    # the model update correlates with the true anomaly
    dv = read_gll(work / "output" / "models" / "stage1_it02" / "proc000000_reg1_vsv.bin") / \
        read_gll(world["init"] / "proc000000_reg1_vsv.bin") - 1.0
    r = float(np.corrcoef(dv, world["gauss"])[0, 1])
    summary["correlation_vsv_anomaly"] = r
    summary["dvsv_at_anomaly_peak"] = float(dv[np.argmax(world["gauss"])])
    summary["dvsv_mean_inside_outside"] = [float(dv[world["gauss"] > 0.5].mean()),
                                           float(dv[world["gauss"] < 0.05].mean())]
    out = Path(os.environ.get("EARA_SPECFEM_SUMMARY", work / "specfem_summary.json"))
    out.write_text(json.dumps(summary, indent=1, default=float))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=1, default=float))
    assert np.all(np.diff(chain) < 0), chain
    # each source update lowered its event's misfit, predicted and re-measured (toward the true
    # source only as far as the 1-D model allows: its delays go into the origin time)
    for ev in world["sources"]:
        folder = work / "output" / "sources" / ev
        ls = json.loads((folder / "CMTSOLUTION_stage1_src01_linesearch.json").read_text())
        assert ls["status"] == "updated" and ls["misfit"] < ls["misfit0"], ls
        assert _event_misfit(work, "stage1_structure01_forward", ev) < \
            _event_misfit(work, "stage1_source01_forward", ev), ev
    inside = float(dv[world["gauss"] > 0.5].mean())
    assert r > 0.0 and inside > 0.0, (r, inside)
