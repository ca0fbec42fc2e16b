#!/usr/bin/env bash
# Weak scaling of a distributed `nyto train` on this machine (docs/distributed.md): 1 and 2
# processes of 1 thread each, the same members per process, for an ES rule (OpenAI-ES, keyed
# noise), PSO and CEM (member folds of the rows over the ranks), with fitness evaluation (mean NLL of the 203,530-parameter mlp on 1000 images
# per member). Per generation, from the trainer's report: wall time, rank 0's own fitness time
# and its wait for the others, the rule's time; the bytes of data rank 0 sends per generation
# (nyto's count; and in the whole run, with the gathering of the members for the final save),
# and the bytes that crossed the loopback interface (/proc/net/dev: every rank, TCP/IP and Gloo
# headers, the rendezvous and the final evaluation included) divided by the generations.
# Then memory: the peak RSS of each rank of a hybrid run (32 members of the mlp of 4096 hidden
# units, 3,256,330 parameters or 13 MB each, SGD with momentum: x, gradients and momentum per
# member), of a pso run (x, velocities, personal bests), of an OpenAI-ES run (x; the mean) and of
# a CEM run (x; the mean and deviation; member folds of the rows over the ranks) with 1 and 2
# processes, each rank started by hand under a Python wrapper that reads
# getrusage(RUSAGE_CHILDREN); with 1 and 16 members in 1 process to compare (1: the run's fixed
# part, data set and LibTorch; 16: what one of the 2 ranks holds).
#   bench/dist_scaling.sh [NYTO] [OUT.jsonl]
#     (PER_RANK=8 GENERATIONS=60 REPEAT=3 RULES="openai_es pso cem"; MEMORY_ONLY=1 MEMORY_MODES="hybrid pso es cem")
set -euo pipefail
nyto=${1:-build/bin/nyto}
out=${2:-/dev/stdout}
per_rank=${PER_RANK:-8}
gens=${GENERATIONS:-60}
repeat=${REPEAT:-3}
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
lo_bytes() { awk '/^ *lo:/ { print $2 }' /proc/net/dev; }
echo "{\"case\": \"host\", \"cpu\": \"$cpu\", \"logical_cpus\": $(nproc), \"load_avg\": $(cut -d' ' -f1 /proc/loadavg)}" >>"$out"
log=$(mktemp)
[ "${MEMORY_ONLY:-0}" = 1 ] || for algo in ${RULES:-openai_es pso cem}; do
  for np in 1 2; do
    m=$((per_rank * np))
    if [ $algo = pso ]; then a=(--mode pso); else a=(--mode evolve --rule examples/rules/$algo.nyto); fi
    for rep in $(seq "$repeat"); do
      l0=$(lo_bytes)
      "$nyto" train "${a[@]}" --particles $m --fitness-size 1000 --seed 1 --threads 1 --eval-every 0 \
        --generations "$gens" --nprocs $np >"$log" 2>&1
      l1=$(lo_bytes)
      wall=$(sed -n 's/^per generation in all: \([0-9.]*\) ms.*/\1/p' "$log")
      rule=$(sed -n 's/^per generation: .* rule \([0-9.]*\) ms.*/\1/p' "$log")
      own=$(sed -n 's/^per generation on rank 0: fitness of its [0-9]* members \([0-9.]*\) ms.*/\1/p' "$log")
      wait=$(sed -n "s/.*waiting for the others' \([0-9.]*\) ms.*/\1/p" "$log")
      fit=$(sed -n 's/^per generation: fitness \([0-9.]*\) ms.*/\1/p' "$log")
      sent=$(sed -n 's/.*rank 0 sent [0-9]* bytes of data in the [0-9]* steps (\([0-9]*\) per step).*/\1/p' "$log")
      total=$(sed -n 's/.*per step), \([0-9]*\) in all.*/\1/p' "$log")
      echo "{\"case\": \"weak-scaling\", \"rule\": \"$algo\", \"processes\": $np, \"members\": $m, \"params\": 203530," \
        "\"generations\": $gens, \"ms_per_generation\": $wall, \"generations_per_s\": $(echo "1000 / $wall" | bc -l | xargs printf '%.2f')," \
        "\"rank0_fitness_ms\": ${own:-$fit}, \"rank0_wait_ms\": ${wait:-0}, \"rule_ms\": $rule," \
        "\"rank0_bytes_per_generation\": ${sent:-0}, \"rank0_bytes_in_all\": ${total:-0}, \"loopback_bytes_per_generation\": $(((l1 - l0) / gens))," \
        "\"particle_bytes\": $((203530 * 4)), \"load_avg\": $(cut -d' ' -f1 /proc/loadavg)}" | tee -a "$out"
    done
  done
done

rss=$(mktemp)
cat >"$rss" <<'PY'
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
sys.exit(p.stderr.decode() or p.returncode) if p.returncode else print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
PY
hybrid=(--mode hybrid --model mlp --hidden 4096 --batches 10 --momentum 0.9 --swarm-every 5 --threads 1 --eval-every 0
        --eval-size 100 --seed 3)
pso=(--mode pso --model mlp --hidden 4096 --generations 5 --fitness-size 500 --threads 1 --eval-every 0
     --eval-size 100 --seed 3)
es=(--mode evolve --rule examples/rules/openai_es.nyto --model mlp --hidden 4096 --generations 5 --fitness-size 500
    --threads 1 --eval-every 0 --eval-size 100 --seed 3)
cem=(--mode evolve --rule examples/rules/cem.nyto --model mlp --hidden 4096 --generations 5 --fitness-size 500
     --threads 1 --eval-every 0 --eval-size 100 --seed 3)
memory() {  # MODE MEMBERS PROCESSES [--save FILE]: one jsonl line per rank
  local mode=$1 m=$2 np=$3
  shift 3
  local -n h=$mode
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  for r in $(seq 0 $((np - 1))); do
    OMP_WAIT_POLICY=passive GLOG_minloglevel=3 python3 "$rss" "$nyto" train "${h[@]}" --particles "$m" \
      --world-size "$np" --rank "$r" --master 127.0.0.1:"$port" "$@" >"$log.$r" &
  done
  wait
  for r in $(seq 0 $((np - 1))); do
    echo "{\"case\": \"memory\", \"mode\": \"$mode\", \"members\": $m, \"processes\": $np, \"rank\": $r," \
      "\"members_on_rank\": $(( m / np + (r < m % np ? 1 : 0) )), \"member_mb\": 13.0, \"save\": $([ $# -gt 0 ] && echo true || echo false)," \
      "\"peak_rss_mb\": $(cat "$log.$r"), \"load_avg\": $(cut -d' ' -f1 /proc/loadavg)}" | tee -a "$out"
    rm -f "$log.$r"
  done
}
for mode in ${MEMORY_MODES:-hybrid pso es cem}; do
  # OpenAI-ES pairs its members (antithetic noise), CEM's elite needs 2: 2 and 4 members for the
  # fixed part.
  fixed=1
  [ $mode = es ] && fixed=2
  [ $mode = cem ] && fixed=4
  [ "${MEMORY_SAVE_ONLY:-0}" = 1 ] || { memory $mode $fixed 1
  memory $mode 16 1
  memory $mode 32 1
  memory $mode 32 2; }
  memory $mode 32 1 --save "$log.pt"
  memory $mode 32 2 --save "$log.pt"
done
rm -f "$log" "$log.pt" "$rss"
