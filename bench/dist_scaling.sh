#!/usr/bin/env bash
# Weak scaling of a distributed `nyto train` on this machine (docs/distributed.md): 1 and 2
# processes of 1 thread each, the same members per process, for an ES rule (OpenAI-ES, keyed
# noise) and PSO, with fitness evaluation (mean NLL of the 203,530-parameter mlp on 1000 images
# per member). Per generation, from the trainer's report: wall time, rank 0's own fitness time
# and its wait for the others, the rule's time; the bytes of data rank 0 sends per generation
# (nyto's count; and in the whole run, with the gathering of the members for the final save),
# and the bytes that crossed the loopback interface (/proc/net/dev: every rank, TCP/IP and Gloo
# headers, the rendezvous and the final evaluation included) divided by the generations.
#   bench/dist_scaling.sh [NYTO] [OUT.jsonl]     (PER_RANK=8 GENERATIONS=60 REPEAT=3)
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
for algo in openai_es pso; do
  for np in 1 2; do
    m=$((per_rank * np))
    if [ $algo = pso ]; then a=(--mode pso); else a=(--mode evolve --rule examples/rules/openai_es.nyto); fi
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
rm -f "$log"
