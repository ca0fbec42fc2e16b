#!/usr/bin/env bash
# run-cli-big: `nyto run examples/rules/pso.nyto` on swarm directories of 32 TorchScript MLPs
# 784-1024-256-10 (1,068,810 float32 parameters each) for x, v and pbest, and one for best
# (413 MB of parameters loaded), saving x, v and pbest back as directories. Prints one JSON line:
# wall seconds and peak resident set (GNU time), the bytes of parameters loaded, the resident set
# of the same binary doing no work on models (`nyto check` of a one-line rule: libraries and
# LLVM) and the ratios peak / loaded and (peak - that baseline) / loaded.
#
# `nyto run` holds a batch of members at a time here (its --batch: the rule's members are
# independent and the swarms are directories); ARGS go to `nyto run` (--batch 0: all at once) and
# are named in the line.
#
# Usage: bench/run_cli_big.sh BUILD_DIR [RESULTS_FILE [ARGS...]]   (needs GNU time, /usr/bin/time)
set -euo pipefail
build=$(realpath "$1")
out=/dev/stdout
[ $# -ge 2 ] && out=$(realpath -m "$2")  # (the script works in a temporary directory)
extra=("${@:3}")
nyto="$build/bin/nyto"
make_models="$build/bench/nyto_bench_make_models"
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for d in x v pbest; do "$make_models" "$work/$d" 32 "$(( ${#d} * 7 + 1 ))"; done
"$make_models" "$work/g" 1 99 && mv "$work/g/member-000.pt" "$work/best.pt" && rmdir "$work/g"
loaded=$(du -cb "$work"/x/*.pt "$work"/v/*.pt "$work"/pbest/*.pt "$work/best.pt" | tail -1 | cut -f1)
params=$(( (3 * 32 + 1) * 1068810 * 4 ))
f=$(seq -s, 0 31)
pf=$(printf 'inf%.0s,' $(seq 32)); pf=${pf%,}
echo 'x = x + 1' > "$work/one.nyto"
/usr/bin/time -f '%M' -o "$work/base" "$nyto" check "$work/one.nyto" > /dev/null
cd "$work"
/usr/bin/time -f '%e %M' -o "$work/run" "$nyto" run "$root/examples/rules/pso.nyto" \
  --load x=x --load v=v --load pbest=pbest --load best=best.pt --set "f=$f" --set "pf=$pf" \
  --save x=x --save v=v --save pbest=pbest --save pf=pf.txt "${extra[@]}" > /dev/null
read -r wall peak_kb < "$work/run"
base_kb=$(cat "$work/base")
python3 - "$wall" "$peak_kb" "$base_kb" "$params" "$loaded" "${extra[*]}" >> "$out" <<'PY'
import json, os, sys
wall, peak_kb, base_kb, params, files = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
mb = 1024.0 * 1024.0
print(json.dumps({"case": "run-cli-big", "impl": "nyto run", "args": sys.argv[6], "wall_s": wall,
                  "peak_rss_mb": round(peak_kb / 1024.0, 1), "params_mb": round(params / mb, 1),
                  "files_mb": round(files / mb, 1), "baseline_rss_mb": round(base_kb / 1024.0, 1),
                  "peak_over_params": round(peak_kb * 1024.0 / params, 3),
                  "extra_over_params": round((peak_kb - base_kb) * 1024.0 / params, 3),
                  "load_avg": float(open("/proc/loadavg").read().split()[0])}))
PY
