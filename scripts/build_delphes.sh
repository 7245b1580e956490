#!/usr/bin/env bash
# Build Delphes into the project's virtual environment, against CERN's ROOT wheel (`pip install root`).
#
#   bash scripts/build_delphes.sh [VENV] [DELPHES_SRC]     (or: make delphes [DELPHES_SRC=...])
#
# VENV defaults to .venv; DELPHES_SRC (a Delphes source folder or .tar.gz of one) defaults to the vendored
# ../shared/vendor/delphes/delphes-src.tar.gz beside the repository. The result is
#   <VENV>/delphes/bin/{DelphesHepMC2,hepmc2pileup}, <VENV>/delphes/lib (libDelphes + dictionaries),
#   <VENV>/delphes/cards (the source's whole cards/ tree, so cards that `source` sub-folders work),
# which the `delphes` backend finds with no environment variables set by hand. Only the two tools the pipeline
# runs are built (libDelphes with its externals, DelphesHepMC2, hepmc2pileup): no event display, which needs
# ROOT components (Eve, RGL, GuiHtml) the wheel does not ship.
#
# What stands between the wheel and Delphes, and how each is passed (without touching the source given):
#  1. the wheel's CMake targets and root-config look under <python lib>/mock_site_packages/{ROOT,cppyy,root.libs}
#     (paths of the wheel's build machine): links there point at the real site-packages folders;
#  2. Delphes' CMakeLists asks for Eve/Gui/GuiHtml and builds display/: a COPY of the source in the build folder
#     is patched to ask for EG Physics and to drop the display;
#  3. the wheel's bundled libfreetype needs symbols from its siblings in root.libs: linked with rpath-link;
#  4. executables carry an rpath to Delphes' lib, ROOT/lib and root.libs, so they run without LD_LIBRARY_PATH.
# Environment: DELPHES_JOBS (parallel compile jobs, default: number of cores), DELPHES_BUILD_DIR (default
# build/delphes in the repository), DELPHES_FORCE=1 rebuilds even when the installed build matches.
set -euo pipefail
ROOT_WHEEL_VERSION=0.1a12   # package `root` on PyPI = ROOT 6.40.00; also pinned in pyproject's [delphes] extra
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV=${1:-.venv}
SRC=${2:-${DELPHES_SRC:-../shared/vendor/delphes/delphes-src.tar.gz}}
JOBS=${DELPHES_JOBS:-$(nproc)}
BUILD=${DELPHES_BUILD_DIR:-$REPO/build/delphes}
die() { echo "build_delphes: $*" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || die "no virtual environment at $VENV (run 'make install' first)"
VENV=$(cd "$VENV" && pwd)
PY=$VENV/bin/python
[ -e "$SRC" ] || die "Delphes source '$SRC' not found (give a source folder or .tar.gz: make delphes DELPHES_SRC=...)"
SRC=$(cd "$(dirname "$SRC")" && pwd)/$(basename "$SRC")
for tool in cmake make g++; do
  command -v "$tool" >/dev/null || die "'$tool' is missing (Debian: apt-get install cmake make g++)"
done
PREFIX=$VENV/delphes

# --- the ROOT wheel ---------------------------------------------------------------------------------------
if [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("root"))' 2>/dev/null)" != "$ROOT_WHEEL_VERSION" ]; then
  echo "build_delphes: installing root==$ROOT_WHEEL_VERSION (CERN's ROOT wheel) into $VENV"
  "$PY" -m pip install --quiet "root==$ROOT_WHEEL_VERSION"
fi
SP=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for name in ROOT cppyy root.libs; do
  [ -d "$SP/$name" ] || die "the root wheel left no $SP/$name"
done
# 1. the wheel's CMake config resolves its prefix to <python lib dir> and looks under mock_site_packages/ there;
#    root-config looks under ROOT/mock_site_packages/ (both are paths of the wheel's build machine).
for base in "$(dirname "$SP")/mock_site_packages" "$SP/ROOT/mock_site_packages"; do
  mkdir -p "$base"
  for name in ROOT cppyy root.libs; do
    ln -sfn "$SP/$name" "$base/$name"
  done
done
ROOT_VERSION=$("$SP/ROOT/bin/root-config" --version)

# --- skip when the installed build came from the same source and ROOT --------------------------------------
if [ -f "$SRC" ]; then
  SRC_ID=$(sha256sum "$SRC" | cut -d' ' -f1)
else
  SRC_ID=$(cd "$SRC" && find . -type f ! -path './.git/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
fi
STAMP="source=$SRC_ID root=$ROOT_VERSION script=$(sha256sum "$0" | cut -d' ' -f1)"
if [ "${DELPHES_FORCE:-0}" != 1 ] && [ -f "$PREFIX/.build-stamp" ] && [ "$(cat "$PREFIX/.build-stamp")" = "$STAMP" ] \
   && [ -x "$PREFIX/bin/DelphesHepMC2" ] && [ -x "$PREFIX/bin/hepmc2pileup" ]; then
  echo "build_delphes: $PREFIX is up to date (ROOT $ROOT_VERSION)"
  exit 0
fi

# --- a patched copy of the source in the build folder (the given source is never modified) -----------------
# Unpacked again only when the source changed, so that an unchanged source rebuilds nothing.
START=$(date +%s)
PATCH_ID="no-display-v1"
if [ "$(cat "$BUILD/src/.colliderflow-source" 2>/dev/null)" != "$SRC_ID $PATCH_ID" ]; then
mkdir -p "$BUILD"
rm -rf "$BUILD/src" "$BUILD/obj"
mkdir -p "$BUILD/src"
if [ -f "$SRC" ]; then
  tar -xzf "$SRC" -C "$BUILD/src" --strip-components=1
else
  cp -a "$SRC/." "$BUILD/src/"
fi
[ -f "$BUILD/src/CMakeLists.txt" ] && [ -f "$BUILD/src/readers/DelphesHepMC2.cpp" ] \
  || die "'$SRC' does not hold a Delphes source tree (no CMakeLists.txt / readers/DelphesHepMC2.cpp at its top)"
# 2. no event display: it needs Eve, RGL and GuiHtml, which the wheel lacks.
sed -i \
  -e 's/find_package(ROOT REQUIRED COMPONENTS EG Eve Gui GuiHtml)/find_package(ROOT REQUIRED COMPONENTS EG Physics)/' \
  -e '/^add_subdirectory(display)/d' \
  -e '/^add_library(DelphesDisplay SHARED/,/^)/d' \
  -e '/^target_link_libraries(DelphesDisplay/d' \
  -e 's/^install(TARGETS Delphes DelphesDisplay DESTINATION lib)/install(TARGETS Delphes DESTINATION lib)/' \
  "$BUILD/src/CMakeLists.txt"
grep -q 'COMPONENTS EG Physics' "$BUILD/src/CMakeLists.txt" && ! grep -q DelphesDisplay "$BUILD/src/CMakeLists.txt" \
  || die "could not remove the event display from $BUILD/src/CMakeLists.txt (unexpected Delphes version?)"
echo "$SRC_ID $PATCH_ID" >"$BUILD/src/.colliderflow-source"
fi

# --- configure and build the tools the pipeline runs ---------------------------------------------------------
RPATH="$PREFIX/lib;$SP/ROOT/lib;$SP/root.libs"
LINK="-Wl,-rpath-link,$SP/root.libs -Wl,--allow-shlib-undefined"
cmake -S "$BUILD/src" -B "$BUILD/obj" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DROOT_DIR="$SP/ROOT/cmake" \
  -DCMAKE_DISABLE_FIND_PACKAGE_Pythia8=ON \
  -DSET_RPATH=OFF -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH="$RPATH" \
  -DCMAKE_EXE_LINKER_FLAGS="$LINK" -DCMAKE_SHARED_LINKER_FLAGS="$LINK" \
  >"$BUILD/cmake.log" 2>&1 || { tail -30 "$BUILD/cmake.log" >&2; die "cmake failed (log: $BUILD/cmake.log)"; }
cmake --build "$BUILD/obj" -j "$JOBS" --target DelphesHepMC2 hepmc2pileup

# --- install: binaries, libDelphes with its dictionaries, the whole cards/ tree --------------------------------
rm -rf "$PREFIX.tmp"
mkdir -p "$PREFIX.tmp/bin" "$PREFIX.tmp/lib"
cp "$BUILD/obj/readers/DelphesHepMC2" "$BUILD/obj/converters/hepmc2pileup" "$PREFIX.tmp/bin/"
cp "$BUILD/obj/libDelphes.so" "$PREFIX.tmp/lib/"
find "$BUILD/obj" -maxdepth 3 \( -name '*.pcm' -o -name '*.rootmap' \) -exec cp {} "$PREFIX.tmp/lib/" \;
cp -a "$BUILD/src/cards" "$PREFIX.tmp/cards"
rm -f "$PREFIX.tmp/cards/CMakeLists.txt"
echo "$STAMP" >"$PREFIX.tmp/.build-stamp"
rm -rf "$PREFIX"
mv "$PREFIX.tmp" "$PREFIX"

# --- smoke check: the tool starts and finds its libraries with no LD_LIBRARY_PATH -----------------------------
# (without arguments it prints its usage and exits 1)
USAGE=$(env -u LD_LIBRARY_PATH "$PREFIX/bin/DelphesHepMC2" 2>&1 || true)
case "$USAGE" in
  *"Usage: DelphesHepMC2"*) ;;
  *) echo "$USAGE" >&2; die "$PREFIX/bin/DelphesHepMC2 does not start" ;;
esac
echo "build_delphes: Delphes installed in $PREFIX (ROOT $ROOT_VERSION, $(( $(date +%s) - START )) s to build)"
