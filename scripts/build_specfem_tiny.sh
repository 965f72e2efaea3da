#!/usr/bin/env bash
# Build the SPECFEM3D_GLOBE binaries the `specfem` tests use (tests/test_specfem_inversion.py),
# from a SPECFEM3D_GLOBE v7.0.x source tree (e.g. the public fork lanucara/specfem3d_globe_cineca;
# see ../shared/tools/README.md). Nothing from SPECFEM is copied into this repository.
#
#   bash scripts/build_specfem_tiny.sh SPECFEM_SRC OUT_DIR
#   SPECFEM_BIN=OUT_DIR SPECFEM_DATA=SPECFEM_SRC/DATA bash scripts/test.sh -m specfem
#
# The case: EXAMPLES/regional_Greece_small (one 20°x20° chunk centred 40N 25E) at NEX 32, one MPI
# process, MODEL = GLL (the mesh of s362ani / 1DREF, values from DATA/GLL), no oceans, ellipticity,
# topography, gravity, rotation or attenuation, 4-minute records, transversely isotropic kernels with
# the approximate Hessian. SPECFEM3D_GLOBE compiles the array sizes of a run into the solver
# (values_from_mesher.h depends on SIMULATION_TYPE and SAVE_FORWARD), so the solver is built once
# per simulation type: xspecfem3D_type1 (forward, saves the last frame), _type3 (kernels), _type2
# (source derivatives) — parameters.yaml's `specfem_solver_binaries`. OUT_DIR also receives the
# Par_file of the forward build (DATA/Par_file of the runs) and SPECFEM's tomography programs.
set -euo pipefail
SRC=$(readlink -f "$1"); OUT=$(readlink -f -m "$2")
mkdir -p "$OUT"
P=$SRC/DATA/Par_file
set_p() { sed -i -E "s|^($1[[:space:]]*=)[^#]*|\1 $2   |" "$P"; }

cp "$SRC/EXAMPLES/regional_Greece_small/DATA/Par_file" "$P"
set_p NEX_XI 32; set_p NEX_ETA 32; set_p NPROC_XI 1; set_p NPROC_ETA 1
set_p MODEL GLL
for k in OCEANS ELLIPTICITY TOPOGRAPHY GRAVITY ROTATION ATTENUATION PARTIAL_PHYS_DISPERSION_ONLY UNDO_ATTENUATION; do
  set_p $k .false.
done
set_p RECORD_LENGTH_IN_MINUTES 4.0d0
set_p ANISOTROPIC_KL .true.; set_p SAVE_TRANSVERSE_KL_ONLY .true.; set_p APPROXIMATE_HESS_KL .true.

cd "$SRC"
[ -f Makefile ] || ./configure FC=gfortran CC=gcc MPIFC=mpif90 \
  FLAGS_CHECK="-O2 -std=gnu -fimplicit-none -fallow-argument-mismatch -fmax-errors=10" >configure.log
for t in 1 3 2; do
  set_p SIMULATION_TYPE $t
  if [ $t = 1 ]; then set_p SAVE_FORWARD .true.; else set_p SAVE_FORWARD .false.; fi
  make xspecfem3D >>"$OUT/make.log" 2>&1
  cp bin/xspecfem3D "$OUT/xspecfem3D_type$t"
  [ $t = 1 ] && cp "$P" "$OUT/Par_file"
done
make xmeshfem3D xcombine_sem xsmooth_sem xsum_preconditioned_kernels xadd_model_tiso_cg >>"$OUT/make.log" 2>&1
cp bin/xmeshfem3D bin/xcombine_sem bin/xsmooth_sem bin/xsum_preconditioned_kernels bin/xadd_model_tiso_cg "$OUT/"
echo "SPECFEM3D_GLOBE binaries in $OUT"
