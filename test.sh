#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through CTest.
#   ./test.sh              both builds below, every test in each (what CI runs)
#   ./test.sh --plain      the Release build in build/ (gcc), every test
#   ./test.sh --asan       the sanitizer build in build-san/ (clang-14: AddressSanitizer,
#                          UndefinedBehaviorSanitizer, LeakSanitizer, and the libFuzzer targets of
#                          fuzz/): every test, and each fuzz target replays its corpus
#   ./test.sh --fuzz SECS  the sanitizer build, then each fuzz target fuzzes for SECS seconds,
#                          one target per core at a time (NYTO_FUZZ_JOBS=N to change it; new
#                          inputs and crashes in build-san/fuzz-work/NAME/); prints executions,
#                          CPU seconds, coverage and crashes per target, exits 1 on a crash
#   ./test.sh --all        the same as no option
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh

usage() {
  echo "usage: ./test.sh [--plain | --asan | --all | --fuzz SECONDS]" >&2
  exit 2
}
mode=${1:-}
case "$mode" in
  "" | --plain | --asan | --all) [ $# -le 1 ] || usage ;;
  --fuzz) [ $# -eq 2 ] && [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -gt 0 ] || usage ;;
  *) usage ;;
esac

nyto_install_packages

# Any UB report is fatal (the code is built with -fno-sanitize-recover); print its stack.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1

san_build() {
  # Benchmarks are not built: their timings mean nothing under sanitizers.
  nyto_build build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
    -DCMAKE_CXX_COMPILER=clang++-14 -DNYTO_SANITIZE=ON -DNYTO_FUZZ=ON -DNYTO_BUILD_BENCH=OFF
}

# The persistent kernel cache (README "Kernel cache"): the plain tests use one of their own,
# emptied first, so that a run depends on nothing a former one left (later processes of a run
# load what earlier ones wrote: the dist and e2e tests exercise it). The sanitized tests use none,
# so that the code generator runs, instrumented, for every kernel.
if [ "$mode" = "" ] || [ "$mode" = "--all" ] || [ "$mode" = "--plain" ]; then
  nyto_build build -DCMAKE_BUILD_TYPE=Release
  rm -rf build/kernel-cache
  NYTO_KERNEL_CACHE_DIR=$PWD/build/kernel-cache ctest --test-dir build --output-on-failure -j 2
fi
if [ "$mode" = "" ] || [ "$mode" = "--all" ] || [ "$mode" = "--asan" ]; then
  san_build
  NYTO_KERNEL_CACHE_DIR= ctest --test-dir build-san --output-on-failure -j 2
fi
if [ "$mode" = "--fuzz" ]; then
  san_build
  # LibTorch's own leaks (its zip reader on a corrupt archive) are not nyto's: fuzz/lsan.supp.
  export LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp
  # Millions of random kernels: none of them kept on disk.
  export NYTO_KERNEL_CACHE_DIR=
  # One target per core at a time (NYTO_FUZZ_JOBS to change it): an hour per target on two cores
  # is then three hours for the six, each target with a core of its own.
  jobs=${NYTO_FUZZ_JOBS:-$(nproc)}
  fuzz_one() {  # TARGET SECONDS: fuzzes, then writes its summary line to $work/summary
    local target=$1 work=build-san/fuzz-work/$1 leaks=1 before after rc execs cov cpu
    mkdir -p "$work/corpus"
    before=$(ls "$work" | grep -cE '^(crash|leak|timeout|oom)-' || true)
    # HEAVY targets (fuzz/CMakeLists.txt) keep memory between inputs or handle tens of MB per
    # input: a leak check after each input (a full heap scan) would leave them a few executions a
    # minute; leaks are still checked at exit.
    grep -q "^nyto_add_fuzzer($target HEAVY" fuzz/CMakeLists.txt && leaks=0
    set +e
    /usr/bin/time -f '%U %S' -o "$work/cpu" "build-san/fuzz/fuzz_$target" -max_total_time="$2" \
      -timeout=60 -rss_limit_mb=4096 -detect_leaks=$leaks -close_fd_mask=1 -print_final_stats=1 \
      -artifact_prefix="$work/" "$work/corpus" "fuzz/corpus/$target" > "$work/log" 2>&1
    rc=$?
    set -e
    after=$(ls "$work" | grep -cE '^(crash|leak|timeout|oom)-' || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/log" | tail -1)
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$work/cpu" 2>/dev/null || echo '?')
    {
      printf '%-17s %10s execs  %6s s CPU  %-22s crashes: %d\n' "$target" "${execs:-?}" "$cpu" \
        "${cov:-cov: ? ft: ?}" $((after - before))
      if [ $rc -ne 0 ]; then
        grep -E '^==[0-9]+==ERROR|^SUMMARY|nyto fuzz:|runtime error' "$work/log" | head -5 | sed 's/^/    /'
        ls -t "$work" | grep -E '^(crash|leak|timeout|oom)-' | head -1 | sed "s|^|    input: $work/|"
      fi
    } > "$work/summary"
    return $rc
  }
  targets=$(sed -n 's/^set(NYTO_FUZZ_TARGETS \(.*\))$/\1/p' fuzz/CMakeLists.txt)
  pids=()
  for target in $targets; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    fuzz_one "$target" "$2" &
    pids+=($!)
  done
  failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  for target in $targets; do cat "build-san/fuzz-work/$target/summary"; done
  exit $failed
fi
