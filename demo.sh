#!/usr/bin/env bash
# The nyto demo: on a fresh Debian 12 machine, installs what is missing, builds the nyto command
# and trains a swarm of 4 MLPs on Fashion-MNIST (hybrid SGD + accelerated-PSO moves, 2 epochs).
# The best member reaches about 0.85 test accuracy on the 10,000 test images; the whole demo
# takes a few minutes on 2 cores (see README, "Training").
#   ./demo.sh [extra nyto train flags]      e.g. ./demo.sh --model cnn --epochs 1
# Outputs in $NYTO_BUILD_DIR/demo (default build/demo): metrics.csv, accuracy.png, checkpoint/.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
build=${NYTO_BUILD_DIR:-build}

start=$(date +%s)
nyto_install_packages
# Only the nyto command (tests and benchmarks are test.sh's business); same tree as test.sh.
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" --target nyto_cli -j "$(nproc)"
built=$(date +%s)
echo "demo: installed and built in $((built - start)) s"

out=$build/demo
mkdir -p "$out"
"$build/bin/nyto" train --metrics "$out/metrics.csv" --plot "$out/accuracy.png" \
  --checkpoint "$out/checkpoint" "$@"
end=$(date +%s)
echo "demo: trained in $((end - built)) s; total $((end - start)) s; plot $out/accuracy.png"
