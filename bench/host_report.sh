#!/usr/bin/env bash
# host_report: the speed and memory figures of README's "Speed" section on this host, in one run,
# saved as JSON lines, then a summary against the targets stated there (a fused rule at the speed
# of memory, compiles in milliseconds, a small per-run cost, particles without reset(), memory).
#
# Every timed line comes from the benches as they print it, tagged with "round"; ratios are taken
# within a round (pso-big's llvm against the stream6 run just after it), never across hosts or
# files. The first line names the host: the CPU as /proc/cpuinfo gives it, the CPU LLVM tunes for,
# the cores, the commit. Let the machine be idle: the summary prints each line's load average
# range so a loaded run shows.
#
#   pso-big   ROUNDS x (llvm, then stream6), 2 and 1 threads; the compile lines come with each
#   pso-l2    2 runs (the step in cache: the kernel's compute alone), and 2 with 256-bit vectors
#             (--vector-bytes 32: whether the host's 512-bit units are worth their width)
#   sites     rand-1..5, randn-1..5 once, then stream6
#   trans-big 2 runs (SLEEF's vector functions)
#   pso-tiny  PROCESSES processes of nyto_bench_runtime (Rule::run; its time depends on the process
#             on some hosts, so the spread over processes is the figure)
#   expr-big  2 runs (lazy particle arithmetic against eager ATen ops)
#   memory    nyto_bench_runtime's pso-big (peak RSS over the swarm's storage), run_cli_big.sh
#
# Usage: bench/host_report.sh BUILD_DIR [OUT.jsonl [ROUNDS [PROCESSES]]]
#   OUT defaults to bench/results/host_<date>_<llvm cpu>.jsonl; ROUNDS 4, PROCESSES 6.
#   Needs a Release build with the benches (nyto_bench_pso, nyto_bench_runtime,
#   nyto_bench_make_models), python3 and GNU time (/usr/bin/time, for run_cli_big.sh).
#   SUMMARY_ONLY=1 bench/host_report.sh BUILD_DIR OUT prints the summary of a saved file.
set -euo pipefail
if [ $# -lt 1 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
build=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${3:-4}
processes=${4:-6}
for b in nyto_bench_pso nyto_bench_runtime nyto_bench_make_models; do
  [ -x "$build/bench/$b" ] || { echo "host_report: $build/bench/$b is missing (build the benches)" >&2; exit 2; }
done
[ -x "$build/bin/nyto" ] || { echo "host_report: $build/bin/nyto is missing" >&2; exit 2; }
llvm_cpu=$("$build/bin/nyto" compile "$root/examples/rules/pso.nyto" --emit llvm |
           grep -o -m1 '"target-cpu"="[^"]*"' | cut -d'"' -f4 || true)
out=${2:-$root/bench/results/host_$(date +%F)_${llvm_cpu:-unknown}.jsonl}
out=$(realpath -m "$out")

summary() {
  python3 - "$1" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
for host in [l for l in lines if l.get("case") == "host"]:
    print(f"host: {host.get('cpu', '?')} (LLVM: {host.get('llvm_cpu', '?')}), {host.get('cores', '?')} cores, "
          f"commit {host.get('commit', '?')}, {host.get('date', '?')}" + (f", run {host['run']}" if "run" in host else ""))
loads = [l["load_avg"] for l in lines if "load_avg" in l]
if loads:
    print(f"load average while timing: {min(loads):.2f}-{max(loads):.2f}")
def pick(case, impl, threads=None, **kv):
    return [l for l in lines if l.get("case") == case and l.get("impl") == impl
            and (threads is None or l.get("threads") == threads)
            and all(l.get(k) == v for k, v in kv.items())]
def rng(xs, fmt="{:.3g}"):
    if not xs: return "not measured"
    lo, hi = min(xs), max(xs)
    return fmt.format(lo) if lo == hi else fmt.format(lo) + "-" + fmt.format(hi)
def verdict(ok, n):
    return "met" if n and ok == n else ("not measured" if not n else f"NOT met ({ok} of {n})")
rows = []
# 1. pso-big against stream6, per round and thread count.
for t in (2, 1):
    ratios = []
    for l in pick("pso-big", "llvm", t):
        s = [x for x in pick("pso-big", "stream6", t)
             if x.get("round") == l.get("round") and x.get("run") == l.get("run")]
        if s: ratios.append(s[0]["ms_median"] / l["ms_median"])
    rows.append((f"pso-big of stream6, {t} thread{'s' if t > 1 else ''}", ">= 0.85",
                 rng(ratios, "{:.2f}") + (f" (median {statistics.median(ratios):.2f}, {len(ratios)} rounds)" if ratios else ""),
                 verdict(sum(r >= 0.85 for r in ratios), len(ratios))))
for t in (2, 1):
    for label, narrow in (("", False), (", 256-bit vectors", True)):
        l2 = [l["ms_median"] * 1e6 / (8 * 4096) for l in pick("pso-l2", "llvm", t)
              if str(l.get("round", "")).startswith("l2-256-") == narrow]
        if l2: rows.append((f"pso-l2{label}, {t} thread{'s' if t > 1 else ''} (ns per element)", "", rng(l2), ""))
runs = sorted({l.get("run") for l in lines if l.get("round") == "sites"}, key=str)
for run in runs:
    s6 = {l["threads"]: l["ms_median"] for l in pick("pso-big", "stream6", round="sites", run=run)}
    for kind in ("rand", "randn"):
        for t in (2, 1):
            xs = [pick(f"{kind}-{n}", "llvm", t, run=run) for n in range(1, 6)]
            if all(xs) and t in s6:
                rows.append((f"{kind}-1..5 sites, {t} thread{'s' if t > 1 else ''}: of stream6"
                             + (f" (run {run})" if len(runs) > 1 else ""), "",
                             " / ".join(f"{s6[t] / x[0]['ms_median']:.2f}" for x in xs), ""))
# 2. Transcendental functions.
for t in (2, 1):
    ns = [l["ns_per_element"] for l in pick("trans-big", "llvm", t)]
    if ns: rows.append((f"trans-big, {t} thread{'s' if t > 1 else ''} (ns per element)", "", rng(ns), ""))
# 3. Compile latency.
warm = [l["ms_median"] for l in pick("compile-pso", "llvm")]
cold = [l["ms_cold"] for l in pick("compile-pso", "llvm") if "ms_cold" in l]
disk = [l["ms_median"] + l.get("engine_ms_median", 0) for l in pick("compile-pso-disk", "llvm")]
rows.append(("compile-pso warm (ms)", "<= 10", rng(warm), verdict(sum(x <= 10 for x in warm), len(warm))))
rows.append(("compile-pso cold (ms)", "<= 25", rng(cold), verdict(sum(x <= 25 for x in cold), len(cold))))
rows.append(("kernel from the disk cache, engine included (ms)", "< 2", rng(disk), verdict(sum(x < 2 for x in disk), len(disk))))
# 4. Per-run cost.
tiny = [l["ms_median"] * 1e3 for l in pick("pso-tiny", "rule", 1)]
rows.append((f"pso-tiny Rule::run, 1 thread (us, over {len(tiny)} processes)", "<= 3", rng(tiny),
             verdict(sum(x <= 3 for x in tiny), len(tiny))))
# 5. Particles without reset().
for t in (2, 1):
    lazy = [l["ms_median"] for l in pick("expr-big", "lazy", t)]
    eager = [l["ms_median"] for l in pick("expr-big", "eager", t)]
    r = [a / b for a, b in zip(lazy, eager)]
    rows.append((f"expr-big lazy over eager ATen, {t} thread{'s' if t > 1 else ''}", "<= 1.3", rng(r, "{:.2f}"),
                 verdict(sum(x <= 1.3 for x in r), len(r))))
# 6. Memory.
peak = [l["peak_over_storage"] for l in pick("pso-big", "rule") if "peak_over_storage" in l]
rows.append(("pso-big peak RSS over the swarm's storage", "<= 1.05", rng(peak), verdict(sum(x <= 1.05 for x in peak), len(peak))))
cli = [l["peak_over_params"] for l in lines if l.get("case") == "run-cli-big"]
rows.append(("run-cli-big peak RSS over the parameters loaded", "<= 1.5", rng(cli), verdict(sum(x <= 1.5 for x in cli), len(cli))))
w = max(len(r[0]) for r in rows)
for name, target, value, v in rows:
    print(f"  {name:<{w}}  {target:>7}  {value:<34} {v}")
PY
}
if [ "${SUMMARY_ONLY:-0}" = 1 ]; then
  summary "$out"
  exit 0
fi

mkdir -p "$(dirname "$out")"
# Runs appended to one file are told apart by "run" (1, 2, ...): ratios pair lines of one run.
run_id=1
[ -f "$out" ] && run_id=$(( $(grep -c '"case": "host"' "$out" || true) + 1 ))
python3 - "$out" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" "${llvm_cpu:-unknown}" \
  "$(nproc)" "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$run_id" <<'PY'
import datetime, json, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"case": "host", "cpu": sys.argv[2], "llvm_cpu": sys.argv[3], "cores": int(sys.argv[4]),
                        "commit": sys.argv[5], "date": datetime.datetime.now().isoformat(timespec="seconds"),
                        "run": int(sys.argv[6])}) + "\n")
PY
# JSON lines on stdin, tagged with round $1 and this run, appended to the file.
tag() { sed "s/}\$/, \"round\": \"$1\", \"run\": $run_id}/" >> "$out"; }
# Runs a bench and keeps its JSON lines, tagged with round $1.
run() {
  local round=$1
  shift
  echo "host_report: $* (round $round)" >&2
  "$@" | grep '^{' | tag "$round"
}
pso=$build/bench/nyto_bench_pso
rt=$build/bench/nyto_bench_runtime
for r in $(seq "$rounds"); do
  run "$r" "$pso" --case pso-big --impl llvm
  run "$r" "$pso" --case pso-big --impl stream6
done
for r in 1 2; do
  run "l2-$r" "$pso" --case pso-l2 --impl llvm
  run "l2-256-$r" "$pso" --case pso-l2 --impl llvm --vector-bytes 32
done
run sites "$pso" --case pso-big --impl sites
run sites "$pso" --case pso-big --impl stream6
for r in 1 2; do run "trans-$r" "$pso" --case trans-big --impl llvm; done
for p in $(seq "$processes"); do run "process-$p" "$rt" --case pso-tiny; done
for r in 1 2; do run "expr-$r" "$rt" --case expr-big; done
run memory "$rt" --case pso-big
echo "host_report: bench/run_cli_big.sh" >&2
cli_line=$(mktemp)
"$root/bench/run_cli_big.sh" "$build" "$cli_line"
tag memory < "$cli_line"
rm -f "$cli_line"
echo "host_report: saved $out" >&2
summary "$out"
