#!/usr/bin/env bash
# The README's table of gradient-free training: every example generation rule under
# `nyto train --mode evolve` at one fixed budget, one JSON object per line:
#   {"rule": ..., "model": ..., "members": ..., "generations": ..., "fitness_images": ..., "threads": ...,
#    "wall_s": ..., "test_acc_best_member": ..., "test_acc_mean": ... | null, "test_acc_best_so_far": ...,
#    "fitness_ms": ..., "rule_ms": ..., "rule_share": ..., "cpu": ...}
# test_acc_best_member is the report's final line (the best member of the last population);
# test_acc_mean the search mean's, for a rule that samples x around one; rule_share the rule's part
# of a generation's time (fitness evaluation + rule).
#   bench/evolve_rules.sh NYTO [--model mlp|cnn] [--members M] [--generations G] [--rules "a b"] [extra flags]
set -euo pipefail
nyto=$1; shift
src=$(cd "$(dirname "$0")/.." && pwd)
model=mlp members=32 generations=3000 rules="openai_es snes cem pgpe sep_cma_es de ga pso lbest_pso"
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --members) members=$2; shift 2 ;;
    --generations) generations=$2; shift 2 ;;
    --rules) rules=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
threads=${THREADS:-2}
for rule in $rules; do
  out=$(mktemp)
  start=$(date +%s.%N)
  "$nyto" train --mode evolve --rule "$src/examples/rules/$rule.nyto" --model "$model" --hidden 32 \
    --particles "$members" --generations "$generations" --fitness-size 1000 --eval-every 0 \
    --threads "$threads" --seed 1 "${extra[@]}" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 - "$out" "$rule" "$model" "$members" "$generations" "$threads" "$start" "$end" "$cpu" <<'PY'
import json, re, sys
out, rule, model, members, generations, threads, start, end, cpu = sys.argv[1:10]
text = open(out).read()
def grab(pattern, default=None):
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else default
print(json.dumps({
    "rule": rule, "model": model, "members": int(members), "generations": int(generations),
    "fitness_images": 1000, "threads": int(threads), "wall_s": round(float(end) - float(start), 1),
    "test_acc_best_member": grab(r"^test accuracy: ([0-9.]+)"),
    "test_acc_mean": grab(r"^search mean \w+: test loss [0-9.]+, test accuracy ([0-9.]+)"),
    "test_acc_best_so_far": grab(r"^best so far .*test accuracy ([0-9.]+)"),
    "fitness_ms": grab(r"^per generation: fitness ([0-9.]+) ms"),
    "rule_ms": grab(r"rule ([0-9.]+) ms"),
    "rule_share": grab(r"ms \(([0-9.]+)% of the two\)"),
    "cpu": cpu}))
PY
  rm -f "$out"
done
