#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through CTest.
#   ./test.sh          Release build in build/, all tests
#   ./test.sh --asan   the same under AddressSanitizer + LeakSanitizer, in build-asan/
#   ./test.sh --all    both
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh

mode=${1:-}
case "$mode" in
  "" | --asan | --all) ;;
  *) echo "usage: ./test.sh [--asan | --all]" >&2; exit 2 ;;
esac

nyto_install_packages

if [ "$mode" != "--asan" ]; then
  nyto_build build -DCMAKE_BUILD_TYPE=Release
  ctest --test-dir build --output-on-failure -j 2
fi
if [ "$mode" = "--asan" ] || [ "$mode" = "--all" ]; then
  # Benchmarks are not built: their timings mean nothing under ASan.
  nyto_build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNYTO_SANITIZE=ON -DNYTO_BUILD_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j 2
fi
