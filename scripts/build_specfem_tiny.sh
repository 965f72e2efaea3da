#!/usr/bin/env bash
# Build the SPECFEM3D_GLOBE binaries every `specfem` test uses, from a SPECFEM3D_GLOBE v7.0.x source
# tree (e.g. an export of the public fork lanucara/specfem3d_globe_cineca; see ../shared/tools/README.md).
# Nothing from SPECFEM is copied into this repository, and SPECFEM_SRC is not modified.
#
#   bash scripts/build_specfem_tiny.sh SPECFEM_SRC OUT_DIR
#   SPECFEM_BIN=OUT_DIR SPECFEM_DATA=SPECFEM_SRC/DATA .venv/bin/python -m pytest -m "specfem and not inversion"
#
# SPECFEM3D_GLOBE compiles the array sizes of a mesh and a simulation type into its programs
# (values_from_mesher.h, from DATA/Par_file of the build folder), so one build serves one mesh. Two
# meshes are built, each in its own configure'd build folder (SPECFEM's Makefile builds out of tree;
# a fork's shipped Makefile, obj/ and bin/ — configured for ifort — are never used):
#   OUT_DIR/gll/      the tiny inversion world: EXAMPLES/regional_Greece_small (one 20°x20° chunk centred
#                     40N 25E) at NEX 32, one MPI process, MODEL = GLL (the mesh of s362ani / 1DREF,
#                     8384 crust-mantle elements), no oceans, ellipticity, topography, gravity, rotation
#                     or attenuation, 4-minute records, transversely isotropic kernels with the approximate
#                     Hessian: xmeshfem3D, one solver per simulation type — xspecfem3D_type1 (forward,
#                     saves the last frame), _type3 (kernels), _type2 (source derivatives), parameters.yaml's
#                     `specfem_solver_binaries` — and the tomography programs; Par_file = the forward one.
#   OUT_DIR/fixture/  the mesh of ../shared/fixtures/specfem3d_globe_tiny (the same case with MODEL =
#                     1D_transversely_isotropic_prem_onecrust and SAVE_MESH_FILES, 7360 crust-mantle
#                     elements; its DATA/Par_file.forward, checked line for line when the fixture is
#                     found): the tomography programs the kernel/smoothing/PR-CG tests run on its kernels.
#   OUT_DIR/manifest.json  what was built: per mesh its Par_file (+ sha256), MODEL, NSPEC of the crust and
#                     mantle, the binaries per simulation type and the tomography programs; the source
#                     (path, commit from SPECFEM_COMMIT or git, sha256 over its src/ files), compiler.
#                     The tests read it.
# Build logs: OUT_DIR/<mesh>/build/{configure,make}.log. Env: JOBS (make -j, default 2), SPECFEM_COMMIT.
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 SPECFEM_SRC OUT_DIR" >&2; exit 2; }
SRC=$(readlink -f "$1"); OUT=$(readlink -f -m "$2")
HERE=$(dirname "$(readlink -f "$0")")
FIXTURE_PAR=$HERE/../../shared/fixtures/specfem3d_globe_tiny/DATA/Par_file.forward
JOBS=${JOBS:-2}
TOMO="xcombine_sem xsmooth_sem xsum_preconditioned_kernels xadd_model_tiso_cg"
[ -x "$SRC/configure" ] && [ -f "$SRC/EXAMPLES/regional_Greece_small/DATA/Par_file" ] || {
  echo "$SRC: not a SPECFEM3D_GLOBE source tree (no configure or EXAMPLES/regional_Greece_small)" >&2; exit 1; }
for exe in gfortran gcc mpif90; do
  command -v $exe >/dev/null || { echo "$exe not found (Debian: apt-get install -y gfortran libopenmpi-dev openmpi-bin)" >&2; exit 1; }
done
mkdir -p "$OUT"
rm -f "$OUT/manifest.json"                     # a half-finished build has no manifest

set_p() { sed -i -E "s|^($2[[:space:]]*=)[^#]*|\1 $3   |" "$1"; }
get_p() { sed -n -E "s|^$2[[:space:]]*=[[:space:]]*([^[:space:]#]+).*|\1|p" "$1"; }

# the Par_file of a mesh (simulation type 1, SAVE_FORWARD): the Greece example, shrunk
par_file() {  # $1 = file, $2 = MODEL
  cp "$SRC/EXAMPLES/regional_Greece_small/DATA/Par_file" "$1"
  set_p "$1" NEX_XI 32; set_p "$1" NEX_ETA 32; set_p "$1" NPROC_XI 1; set_p "$1" NPROC_ETA 1
  set_p "$1" MODEL "$2"
  for k in OCEANS ELLIPTICITY TOPOGRAPHY GRAVITY ROTATION ATTENUATION PARTIAL_PHYS_DISPERSION_ONLY UNDO_ATTENUATION; do
    set_p "$1" $k .false.
  done
  set_p "$1" RECORD_LENGTH_IN_MINUTES 4.0d0
  set_p "$1" ANISOTROPIC_KL .true.; set_p "$1" SAVE_TRANSVERSE_KL_ONLY .true.; set_p "$1" APPROXIMATE_HESS_KL .true.
  set_p "$1" SIMULATION_TYPE 1; set_p "$1" SAVE_FORWARD .true.
}

# a fresh build folder configured for gfortran + mpif90 (gfortran >= 10 needs -fallow-argument-mismatch)
configure_in() {  # $1 = build folder
  rm -rf "$1"; mkdir -p "$1/DATA"
  local d; for d in "$SRC"/DATA/*; do [ "${d##*/}" = Par_file ] || ln -s "$d" "$1/DATA/"; done
  (cd "$1" && "$SRC/configure" FC=gfortran CC=gcc MPIFC=mpif90 \
     FLAGS_CHECK="-O2 -std=gnu -fimplicit-none -fallow-argument-mismatch -fmax-errors=10" >configure.log 2>&1) \
    || { echo "configure failed: $1/configure.log" >&2; tail -20 "$1/configure.log" >&2; exit 1; }
  grep -q "^FC = gfortran" "$1/Makefile" || { echo "$1/Makefile is not configured for gfortran" >&2; exit 1; }
}

build() {  # $1 = build folder, $2.. = make targets
  local b=$1; shift
  (cd "$b" && make -j"$JOBS" "$@" >>make.log 2>&1) \
    || { echo "make $* failed: $b/make.log" >&2; tail -30 "$b/make.log" >&2; exit 1; }
}

nspec_of() {  # NSPEC_CRUST_MANTLE compiled into the build
  local n; n=$(sed -n -E 's|.*NSPEC_CRUST_MANTLE[[:space:]]*=[[:space:]]*([0-9]+).*|\1|p' "$1/OUTPUT_FILES/values_from_mesher.h" | head -1)
  [ -n "$n" ] || { echo "no NSPEC_CRUST_MANTLE in $1/OUTPUT_FILES/values_from_mesher.h" >&2; exit 1; }
  echo "$n"
}

json_list() { local s="" x; for x in "$@"; do s="$s${s:+, }\"$x\""; done; echo "[$s]"; }

# ---- the GLL inversion world: mesher, three solvers, tomography programs
G=$OUT/gll; B=$G/build
mkdir -p "$G"; rm -f "$G"/x* "$G/Par_file"
configure_in "$B"
par_file "$B/DATA/Par_file" GLL
for t in 3 2 1; do                      # type 1 last: the tomography programs use the forward Par_file
  set_p "$B/DATA/Par_file" SIMULATION_TYPE $t
  if [ $t = 1 ]; then set_p "$B/DATA/Par_file" SAVE_FORWARD .true.; else set_p "$B/DATA/Par_file" SAVE_FORWARD .false.; fi
  build "$B" xspecfem3D
  cp "$B/bin/xspecfem3D" "$G/xspecfem3D_type$t"
done
build "$B" xmeshfem3D $TOMO
for x in xmeshfem3D $TOMO; do cp "$B/bin/$x" "$G/"; done
cp "$B/DATA/Par_file" "$G/Par_file"
NSPEC_GLL=$(nspec_of "$B")

# ---- the fixture's mesh: tomography programs
F=$OUT/fixture; B=$F/build
mkdir -p "$F"; rm -f "$F"/x* "$F/Par_file"
configure_in "$B"
par_file "$B/DATA/Par_file" 1D_transversely_isotropic_prem_onecrust
set_p "$B/DATA/Par_file" SAVE_MESH_FILES .true.
if [ -f "$FIXTURE_PAR" ]; then
  cmp -s "$B/DATA/Par_file" "$FIXTURE_PAR" || {
    echo "the fixture mesh's Par_file differs from $FIXTURE_PAR:" >&2; diff "$B/DATA/Par_file" "$FIXTURE_PAR" >&2; exit 1; }
else
  echo "note: $FIXTURE_PAR not found, the fixture Par_file is not checked" >&2
fi
build "$B" $TOMO
for x in $TOMO; do cp "$B/bin/$x" "$F/"; done
cp "$B/DATA/Par_file" "$F/Par_file"
NSPEC_FIX=$(nspec_of "$B")

# ---- manifest
COMMIT=${SPECFEM_COMMIT:-$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)}
sha() { sha256sum "$1" | cut -d' ' -f1; }
TREE=$(cd "$SRC" && find src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
cat >"$OUT/manifest.json.tmp" <<EOF
{
 "format": 1,
 "source": {"path": "$SRC", "commit": "$COMMIT", "tree_sha256": "$TREE"},
 "compiler": "$(gfortran --version | head -1)",
 "mpi": "$(mpirun --version 2>/dev/null | head -1)",
 "meshes": {
  "gll": {"dir": "gll", "MODEL": "$(get_p "$G/Par_file" MODEL)", "Par_file": "gll/Par_file",
          "par_file_sha256": "$(sha "$G/Par_file")", "nspec_crust_mantle": $NSPEC_GLL,
          "mesher": "xmeshfem3D",
          "solvers": {"1": "xspecfem3D_type1", "2": "xspecfem3D_type2", "3": "xspecfem3D_type3"},
          "tomography": $(json_list $TOMO)},
  "fixture": {"dir": "fixture", "MODEL": "$(get_p "$F/Par_file" MODEL)", "Par_file": "fixture/Par_file",
              "par_file_sha256": "$(sha "$F/Par_file")", "nspec_crust_mantle": $NSPEC_FIX,
              "solvers": {}, "tomography": $(json_list $TOMO)}
 }
}
EOF
mv "$OUT/manifest.json.tmp" "$OUT/manifest.json"
echo "SPECFEM3D_GLOBE binaries in $OUT (gll: NSPEC $NSPEC_GLL, fixture: NSPEC $NSPEC_FIX); manifest $OUT/manifest.json"
