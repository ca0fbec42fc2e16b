#!/usr/bin/env bash
# Model merging end to end on Fashion-MNIST, with nothing but the nyto command:
#   1. train a base MLP (nyto train);
#   2. fine-tune one copy of it on classes 0-4 and one on classes 5-9 (nyto train --init --classes);
#   3. merge the two with task arithmetic, TIES, DARE and SLERP (nyto run examples/rules/*.nyto);
#   4. test every model on the whole test set, overall and on each half (nyto eval).
# Prints the table of step 4 and writes it to OUT/results.csv.
#
#   examples/merge/run.sh [--nyto PATH] [--out DIR] [--data DIR] [--small]
#
# --small: 140 steps in all (what the test runs); the default, 1,800 steps, took 9.5 s on 2 cores
# with every merge and the evaluation. TIES and DARE take the fine-tuned models as a swarm (a
# directory of model files) with a weight per model (--set w=1,1); SLERP interpolates the two
# fine-tuned models tensor by tensor.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
nyto=$here/../../build/bin/nyto
out=merge-out
data=/usr/share/datasets/fashion-mnist
small=0
while [ $# -gt 0 ]; do
  case $1 in
    --nyto) nyto=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --small) small=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$nyto" ] || { echo "run.sh: no nyto at $nyto (build it, or pass --nyto PATH)" >&2; exit 2; }
if [ $small = 1 ]; then base_steps=60 ft_steps=40; else base_steps=1000 ft_steps=400; fi
mkdir -p "$out"
common=(--data "$data" --model mlp --hidden 64 --particles 1 --eval-every 0 --swarm-every 0)

echo "== 1. base model: $base_steps steps on every class"
"$nyto" train "${common[@]}" --batches "$base_steps" --save "$out/base.pt" | tail -n 1
for classes in 0-4 5-9; do
  echo "== 2. fine-tune on classes $classes: $ft_steps steps from the base"
  "$nyto" train "${common[@]}" --batches "$ft_steps" --init "$out/base.pt" --classes "$classes" \
    --save "$out/ft_$classes.pt" | tail -n 1
done
echo "== 3. merge: task arithmetic, t = 0.5"
"$nyto" run "$here/../rules/merge.nyto" --load base="$out/base.pt" --load ft_a="$out/ft_0-4.pt" \
  --load ft_b="$out/ft_5-9.pt" --set t=0.5 --save merged="$out/task_arithmetic.pt"
# TIES and DARE read the fine-tuned models as one swarm, a directory of model files, and the
# base as one particle: nyto train saves a swarm (of one here), whose mean is that model.
mkdir -p "$out/ft"
cp "$out/ft_0-4.pt" "$out/ft/0.pt"
cp "$out/ft_5-9.pt" "$out/ft/1.pt"
echo "model = mmean(swarm)" >"$out/one.nyto"
"$nyto" run "$out/one.nyto" --load swarm="$out/base.pt" --save model="$out/base_model.pt"
echo "== 3. merge: TIES, density 0.2 (the paper's top 20%), weights 1"
"$nyto" run "$here/../rules/ties.nyto" --load base="$out/base_model.pt" --load ft="$out/ft" --set w=1,1 \
  --set density=0.2 --save merged="$out/ties.pt"
echo "== 3. merge: DARE, density 0.5, weights 0.5, L1 rescale"
"$nyto" run "$here/../rules/dare.nyto" --load base="$out/base_model.pt" --load ft="$out/ft" --set w=0.5,0.5 \
  --set density=0.5 --seed 1 --save merged="$out/dare.pt"
echo "== 3. merge: SLERP of the two fine-tuned models, t = 0.5"
"$nyto" run "$here/../rules/slerp.nyto" --load a="$out/ft_0-4.pt" --load b="$out/ft_5-9.pt" --set t=0.5 \
  --save merged="$out/slerp.pt"
echo "== 4. every model on the test set"
"$nyto" eval --data "$data" --subset 0-4 --subset 5-9 --csv "$out/results.csv" \
  "$out/base.pt" "$out/ft_0-4.pt" "$out/ft_5-9.pt" "$out/task_arithmetic.pt" "$out/ties.pt" \
  "$out/dare.pt" "$out/slerp.pt"
