"""Structure step throughput (SPEC §6; issue 5 item 8): damping + summation + preconditioning +
PR-CG direction for N events on the real fixture mesh, time and peak memory against N, and
SPECFEM3D_GLOBE's own src/tomography programs on the same files in the same run.

The mesh is shared/fixtures/specfem3d_globe_tiny's crust/mantle (one process, 8384 elements,
1.05 M GLL points: more than one of EARA's 441 processes holds, ~5,200 elements). Every event
reads the fixture's real kernel files (TISO kernels + Hessian; N folders of symbolic links, so the
reads come from the page cache for ours and SPECFEM's alike) and has its own damping centres: a
source and `--receivers` receivers drawn in the chunk.

  ours      seisflows_eara.optimize.structure: per event read, damping mask (50 km source,
            10 km receivers), TISO kernels -> EARA parametrization (chain rule, δlnρ = 0.33 δlnVs),
            streaming sum of g and Σ|H|; P = 1/max(H, δ max H); PR-CG direction with the previous
            iteration's (g, Pg, d) (β computed, max|d| = 1). Smoothing is not included (it is
            SPECFEM's xsmooth_sem or ours, timed in tests/test_solver_smoothing.py).
  SPECFEM   xsum_preconditioned_kernels on the same N folders (sum of the 4 TISO kernels and
            Σ|H|, inverse-Hessian preconditioning; no damping, no change of parameters) +
            xadd_model_tiso_cg (PR+ direction and model update), each an MPI singleton under
            /usr/bin/time (peak RSS), when SPECFEM_BIN holds them (scripts/build_specfem_tiny.sh's OUT_DIR:
            its fixture/ build, the fixture mesh's).

Each N runs in a fresh child process (peak RSS per N). One core (thread variables set to 1).
Run: python benchmarks/bench_structure.py [--events 1,4,16,64] [--receivers 200]
"""
from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import lzma  # noqa: E402
import multiprocessing as mp  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEISFLOWS_EARA_SHARED", REPO.parent / "shared"))
TINY = SHARED / "fixtures" / "specfem3d_globe_tiny"
SPECFEM_BIN = Path(os.environ.get("SPECFEM_BIN", "/nonexistent"))
if (SPECFEM_BIN / "manifest.json").is_file():     # scripts/build_specfem_tiny.sh: one folder per mesh
    SPECFEM_BIN = SPECFEM_BIN / "fixture"
TISO = ("bulk_c", "bulk_betav", "bulk_betah", "eta")
#: what the EARA gradient reads per event: TISO kernels above tiso_max_depth, iso below, Hessian
READ = (*TISO, "rho", "alphav", "alphah", "betav", "betah", "hess")
MODEL = ("vpv", "vph", "vsv", "vsh", "eta", "rho")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(root: Path, n_events: int) -> Path:
    """root/INPUT_KERNELS/evNNN/ (links to the fixture kernels), kernels_list.txt, DATA/Par_file,
    DATABASES_MPI and topo/ (decompressed mesh), INPUT_MODEL/, the previous iteration's files."""
    from seisflows_eara.model import write_gll
    from seisflows_eara.model.gll import read_gll
    (root / "DATA").mkdir(parents=True)
    (root / "OUTPUT_FILES").mkdir()
    shutil.copy(TINY / "DATA" / "Par_file.forward", root / "DATA" / "Par_file")
    db = root / "DATABASES_MPI"
    db.mkdir()
    with lzma.open(TINY / "DATABASES_MPI" / "proc000000_reg1_solver_data.bin.xz") as f, \
            open(db / "proc000000_reg1_solver_data.bin", "wb") as out:
        shutil.copyfileobj(f, out)
    (root / "topo").mkdir()
    (root / "topo" / "proc000000_reg1_solver_data.bin").symlink_to(db / "proc000000_reg1_solver_data.bin")
    for d in ("INPUT_MODEL", "INPUT_GRADIENT", "KERNELS/OUTPUT_SUM.old", "OUTPUT_MODEL", "OUTPUT_SUM"):
        (root / d).mkdir(parents=True)
    for n in MODEL:
        with lzma.open(TINY / "MODEL_GLL" / f"proc000000_reg1_{n}.bin.xz") as f, \
                open(root / "INPUT_MODEL" / f"proc000000_reg1_{n}.bin", "wb") as out:
            shutil.copyfileobj(f, out)
    names = []
    for e in range(n_events):
        d = root / "INPUT_KERNELS" / f"ev{e:03d}"
        d.mkdir(parents=True)
        for k in READ:
            (d / f"proc000000_reg1_{k}_kernel.bin").symlink_to(TINY / "KERNELS" /
                                                              f"proc000000_reg1_{k}_kernel.bin")
        names.append(d.name)
    (root / "kernels_list.txt").write_text("\n".join(names) + "\n")
    # the previous iteration (for β): the same kernels, scaled and with a twist, and d_old = −g_old
    rng = np.random.default_rng(1)
    for k, dname in zip(TISO, ("dbulk_c", "dbetav", "dbetah", "deta")):
        g = np.asarray(read_gll(TINY / "KERNELS" / f"proc000000_reg1_{k}_kernel.bin"), float)
        g_old = 0.8 * g + 0.1 * np.abs(g).max() * rng.standard_normal(g.size) * (np.abs(g) > 0)
        old = root / "KERNELS" / "OUTPUT_SUM.old"
        write_gll(old / f"proc000000_reg1_{k}_kernel_smooth.bin", g_old)
        write_gll(old / f"proc000000_reg1_{dname}.bin", -g_old)
        write_gll(root / "INPUT_GRADIENT" / f"proc000000_reg1_{k}_kernel_smooth.bin", g)
    return root


def _ours(root: str, n_events: int, n_receivers: int, queue) -> None:
    try:
        queue.put(_ours_timed(Path(root), n_events, n_receivers))
    except BaseException as e:       # the parent reports it
        queue.put(e)


def _ours_timed(root: Path, n_events: int, n_receivers: int) -> dict:
    from seisflows_eara import params
    from seisflows_eara.kernels import geographic_to_xyz, precondition, preconditioner
    from seisflows_eara.model import read_mesh
    from seisflows_eara.model.gll import read_gll
    from seisflows_eara.optimize.structure import EventKernels, Gradient, direction, summed_gradient
    v = params.defaults()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    mesh = read_mesh(root / "DATABASES_MPI" / "proc000000_reg1_solver_data.bin")
    model = {n: np.asarray(read_gll(root / "INPUT_MODEL" / f"proc000000_reg1_{n}.bin"), float)
             for n in MODEL}
    t_mesh = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    lat0, lon0 = 40.0, 25.0             # the fixture chunk's centre (regional_Greece_small)

    def events():
        for e in range(n_events):
            d = root / "INPUT_KERNELS" / f"ev{e:03d}"
            kernels = {k: read_gll(d / f"proc000000_reg1_{k}_kernel.bin")     # float32, mapped
                       for k in READ}
            src = geographic_to_xyz(lat0 + rng.uniform(-8, 8), lon0 + rng.uniform(-8, 8),
                                    rng.uniform(10, 300))[0]
            rec = geographic_to_xyz(lat0 + rng.uniform(-9, 9, n_receivers),
                                    lon0 + rng.uniform(-9, 9, n_receivers), np.zeros(n_receivers))
            yield EventKernels(d.name, kernels, src, rec)

    t0 = time.perf_counter()
    g, hess = summed_gradient(events(), mesh, model, v)
    t_sum = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = preconditioner(hess, v["hessian_threshold"], v["hessian_rule"])
    pg = precondition(g, p)
    t_pre = time.perf_counter() - t0
    # a previous iteration little correlated with this one (no Powell restart: β is computed)
    prev = ({k: np.roll(a, 4099) for k, a in g.items()}, {k: np.roll(a, 4099) for k, a in pg.items()},
            {k: -np.roll(a, 4099) for k, a in pg.items()})
    t0 = time.perf_counter()
    d = direction(Gradient(g, pg, float(np.abs(hess).max())), prev, v["powell_threshold"])
    t_dir = time.perf_counter() - t0
    return dict(mesh=t_mesh, sum=t_sum, precondition=t_pre, direction=t_dir, beta=d.beta,
                rss=_rss_mb() - rss0, peak=_rss_mb())


def _specfem(root: Path) -> dict | None:
    progs = [SPECFEM_BIN / "xsum_preconditioned_kernels", SPECFEM_BIN / "xadd_model_tiso_cg"]
    if not all(p.exists() for p in progs) or shutil.which("time") is None:
        return None
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    out = {}
    for key, args in (("sum", [str(progs[0])]), ("direction", [str(progs[1]), "0.03"])):
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", *args], cwd=root, capture_output=True,
                           text=True, env=env)          # an MPI singleton: one process
        out[key] = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        out[f"{key}_rss"] = float(p.stderr.strip().splitlines()[-1]) / 1024.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", default="1,4,16,64")
    ap.add_argument("--receivers", type=int, default=200)
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    print("structure step on the fixture mesh (1.05 M GLL points, one process), one core:")
    print(f"{'N':>4} | {'ours: read+damp+param+sum':>26} {'precond':>8} {'direction':>9} "
          f"{'peak RSS':>9} | {'SPECFEM: xsum_precond':>22} {'xadd_model_tiso_cg':>19} "
          f"{'peak RSS':>9} | ratio", flush=True)
    for n in (int(x) for x in a.events.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench_structure.") as tmp:
            root = _setup(Path(tmp), n)
            q = ctx.Queue()
            proc = ctx.Process(target=_ours, args=(str(root), n, a.receivers, q))
            proc.start()
            r = q.get()
            proc.join()
            if isinstance(r, BaseException):
                raise r
            s = _specfem(root)
        ours = r["sum"] + r["precondition"] + r["direction"]
        line = (f"{n:>4} | {r['sum']:>24.2f} s {r['precondition']:>6.2f} s {r['direction']:>7.2f} s "
                f"{r['peak']:>6.0f} MB | ")
        if s:
            theirs = s["sum"] + s["direction"]
            line += (f"{s['sum']:>20.2f} s {s['direction']:>17.2f} s "
                     f"{max(s['sum_rss'], s['direction_rss']):>6.0f} MB | "
                     f"{theirs / ours:.2f}x (SPECFEM/ours; β {r['beta']:.3f}; ours also read the "
                     f"mesh and model once: {r['mesh']:.1f} s)")
        else:
            line += "SPECFEM_BIN without the tomography programs: not timed"
        print(line, flush=True)


if __name__ == "__main__":
    main()
