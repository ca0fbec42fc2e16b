#!/usr/bin/env bash
# End-to-end tests of `nyto train` (CTest label `train`).
#   train_e2e.sh NYTO SOURCE_DIR WORK_DIR CASE
# CASE: run-MODEL-MODE | resume | determinism | pso-one-member | errors | diverge | outputs |
#       init-classes | merge-example | evolve-RULE (examples/rules/RULE.nyto) | evolve-resume | evolve-errors |
#       dist-equal | dist-env | dist-faults | dist-run (several processes on loopback, docs/distributed.md).
# Exit 77 (skipped)
# without the data.
set -uo pipefail
nyto=$1 src=$2 work=$3 case=$4
data=${NYTO_TEST_DATA:-/usr/share/datasets/fashion-mnist}
if [ ! -f "$data/train-images-idx3-ubyte.gz" ] && [ ! -f "$data/train-images-idx3-ubyte" ]; then
  echo "SKIP: no Fashion-MNIST in $data (apt-get install dataset-fashion-mnist)"
  exit 77
fi
export NYTO_CACHE_DIR=$work/cache
dir=$work/$case
rm -rf "$dir" && mkdir -p "$dir"
fails=0
same() { python3 "$src/tests/train/same_archive.py" "$1" "$2"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# Small, fast runs: 3 members, 20 steps, periodic evaluations on 500 test images.
opts=(--particles 3 --eval-every 5 --eval-size 500 --threads 2)
small=(--data "$data" "${opts[@]}")

# expect_exit CODE PATTERN -- ARGS...: runs nyto train ARGS, checks exit code and that stderr
# (or stdout) contains PATTERN.
expect_exit() {
  local code=$1 pattern=$2
  shift 3
  "$nyto" train "$@" >"$dir/out" 2>"$dir/err"
  local rc=$?
  if [ $rc -ne "$code" ]; then
    fail "nyto train $* exited $rc, expected $code"; cat "$dir/out" "$dir/err"; return
  fi
  if ! grep -q -- "$pattern" "$dir/err" "$dir/out"; then
    fail "nyto train $*: no '$pattern' in its messages:"; cat "$dir/err"
  fi
}

# finished RC LAST: shows the run's output; it exited 0 and its last line is the report's, naming a
# member from 0 to LAST.
finished() {
  cat "$dir/out" "$dir/err"
  [ "$1" -eq 0 ] || fail "exit status $1"
  tail -n 1 "$dir/out" | grep -Eq "^test accuracy: [01]\.[0-9]{4} \(best member [0-$2]\)$" ||
    fail "last line is not 'test accuracy: 0.XXXX (best member N)'"
}

case $case in
run-*)
  IFS=- read -r _ model mode <<<"$case"
  "$nyto" train "${small[@]}" --batches 20 --model "$model" --mode "$mode" --batch-size 32 --lr 0.05 \
    --metrics "$dir/m.csv" --plot "$dir/p.png" --checkpoint "$dir/ck" --save "$dir/final.pt" \
    >"$dir/out" 2>"$dir/err"
  finished $? 2
  for f in m.csv p.png ck/checkpoint.pt ck/swarm.pt final.pt; do
    [ -s "$dir/$f" ] || fail "$f missing or empty"
  done
  head -c 8 "$dir/p.png" | od -An -c | grep -q 'P   N   G' || fail "p.png is not a PNG"
  # The CSV: header, 3 members x evaluations at steps 5, 10, 15, 20, numbers everywhere, and the
  # mean train loss of the last evaluation below that of the first.
  awk -F, -v m="$model" '
    NR == 1 { if ($0 != "step,member,train_loss,test_loss,test_accuracy") { print "bad header: " $0; bad = 1 } next }
    NF != 5 { print "bad row: " $0; bad = 1 }
    { for (i = 1; i <= 5; i++) if ($i !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) { print "not a number: " $0; bad = 1 } }
    $5 < 0 || $5 > 1 { print "accuracy out of range: " $0; bad = 1 }
    { loss[$1] += $3 / 3; rows++; steps[$1] = 1 }
    END {
      if (rows != 12) { print "expected 12 rows, got " rows; bad = 1 }
      if (!(5 in loss) || !(20 in loss)) { print "no evaluation at steps 5 and 20"; exit 1 }
      printf "mean train loss: step 5 %.4f -> step 20 %.4f\n", loss[5], loss[20]
      if (!(loss[20] < loss[5])) { print "train loss did not fall"; bad = 1 }
      exit bad
    }' "$dir/m.csv" || fail "metrics CSV"
  # nyto eval of the saved swarm: one row per member, whose accuracy on the whole test set is the
  # one train reported for it at its last evaluation; subsets and classes add up.
  "$nyto" eval --model "$model" --data "$data" --threads 2 --subset 0-4 --subset 5,6,7,8,9 \
    --csv "$dir/e.csv" "$dir/final.pt" >"$dir/eval.out" 2>&1 || fail "nyto eval: $(cat "$dir/eval.out")"
  cat "$dir/eval.out"
  awk -F, 'NR == FNR { if (FNR > 1) acc[$2] = $5; next }
    FNR == 1 { if ($0 != "model,all,0-4,5,6,7,8,9,class 0,class 1,class 2,class 3,class 4,class 5,class 6,class 7,class 8,class 9") { print "bad header: " $0; bad = 1 } next }
    { m = FNR - 2
      if ($1 != dir "/final.pt[" m "]") { print "bad label: " $1; bad = 1 }
      if ($2 != acc[m]) { print "member " m ": eval " $2 ", train " acc[m]; bad = 1 }
      s = 0; for (i = 5; i <= 14; i++) s += $i
      if ((s / 10 - $2)^2 > 1e-6) { print "classes do not average to the whole: " $0; bad = 1 }
      if ((($3 + $4) / 2 - $2)^2 > 1e-6) { print "subsets do not average to the whole: " $0; bad = 1 }
      rows++ }
    END { if (rows != 3) { print rows " rows, expected 3"; bad = 1 } exit bad }' dir="$dir" "$dir/m.csv" "$dir/e.csv" ||
    fail "nyto eval's table does not match train's evaluation"
  # Bad input: a missing file exits 1, a file of another model or a bad subset exits 2.
  other=$([ "$model" = mlp ] && echo cnn || echo mlp)
  "$nyto" eval --data "$data" "$dir/missing.pt" >"$dir/out" 2>&1; rc=$?
  { [ $rc -eq 1 ] && grep -q "missing.pt" "$dir/out"; } || fail "eval of a missing file: exit $rc, $(cat "$dir/out")"
  "$nyto" eval --model "$other" --data "$data" "$dir/final.pt" >"$dir/out" 2>&1; rc=$?
  { [ $rc -eq 2 ] && grep -q "is not an* $other of the zoo" "$dir/out"; } ||
    fail "eval --model $other of a $model: exit $rc, $(cat "$dir/out")"
  "$nyto" eval --subset 4-2 --data "$data" "$dir/final.pt" >"$dir/out" 2>&1; rc=$?
  { [ $rc -eq 2 ] && grep -q "the range 4-2 is empty" "$dir/out"; } || fail "eval --subset 4-2: exit $rc, $(cat "$dir/out")"
  ;;
resume)
  # An uninterrupted run, and one killed by SIGKILL at step 13 (after the checkpoint of step 10,
  # in the middle of an interval) then resumed: the same final swarm, bit for bit (every record
  # of the saved archives equal byte for byte).
  # With momentum, so the optimizers' state must travel through the checkpoint too.
  base=("${small[@]}" --model mlp --hidden 64 --batches 20 --seed 7 --swarm-every 3 --lr 0.02)
  args=("${base[@]}" --momentum 0.9)
  "$nyto" train "${args[@]}" --checkpoint "$dir/a" --save "$dir/a.pt" --metrics "$dir/a.csv" >"$dir/a.out" 2>&1 ||
    fail "uninterrupted run: $(cat "$dir/a.out")"
  "$nyto" train "${args[@]}" --checkpoint "$dir/b" --kill-at-step 13 >"$dir/b.out" 2>&1
  rc=$?
  [ $rc -eq 137 ] || fail "killed run exited $rc, expected 137 (SIGKILL)"
  [ -f "$dir/b.pt" ] && fail "killed run saved its final swarm"
  [ -f "$dir/b/checkpoint.pt" ] || fail "killed run left no checkpoint"
  "$nyto" train "${args[@]}" --checkpoint "$dir/b" --resume --save "$dir/b.pt" --metrics "$dir/b.csv" >"$dir/b2.out" 2>&1 ||
    fail "resumed run: $(cat "$dir/b2.out")"
  cat "$dir/b2.out"
  grep -q "resumed from .* at step 10" "$dir/b2.out" || fail "did not resume at step 10"
  same "$dir/a.pt" "$dir/b.pt" || fail "resumed final swarm differs from the uninterrupted one"
  cmp "$dir/a.csv" "$dir/b.csv" || fail "resumed metrics differ from the uninterrupted ones"
  # Resuming with another setting is refused, naming it.
  expect_exit 2 "momentum=0.9" -- "${base[@]}" --checkpoint "$dir/b" --resume --momentum 0.5
  # A damaged checkpoint is refused naming the field (a digit of the shuffle RNG's state made a
  # letter), or by its digest (the digit changed to another digit: still a valid state).
  cp "$dir/b/checkpoint.pt" "$dir/good.pt"
  for how in letter digit; do
    python3 - "$dir/good.pt" "$dir/b/checkpoint.pt" "$how" <<'PY'
import sys, zipfile
src, out, how = sys.argv[1:4]
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(out, "w") as zo:
    for info in zi.infolist():
        d = zi.read(info.filename)
        if info.filename.endswith("/data.pkl"):
            k = d.index(b"shuffle_rng") + 40  # inside the state's text
            while not d[k:k + 1].isdigit():
                k += 1
            new = b"x" if how == "letter" else bytes([ord("0") + (d[k] - ord("0") + 1) % 10])
            d = d[:k] + new + d[k + 1:]
        zo.writestr(info, d)
PY
    want="field 'shuffle_rng' is not a random number generator's state"
    [ "$how" = digit ] && want="do not match their digest"
    expect_exit 1 "$want" -- "${args[@]}" --checkpoint "$dir/b" --resume
  done
  cp "$dir/good.pt" "$dir/b/checkpoint.pt"
  # A part with one byte changed, or missing: refused naming it, and left as it was.
  part=$(ls "$dir"/b/parts-*/members-*.pt)
  [ "$(echo "$part" | wc -l)" = 1 ] || fail "one process wrote other parts than one: $part"
  cp "$part" "$dir/part.pt"
  python3 -c "import sys; d = bytearray(open(sys.argv[1], 'rb').read()); d[len(d) // 2] ^= 1; open(sys.argv[1], 'wb').write(d)" "$part"
  cp "$part" "$dir/bad-part.pt"
  expect_exit 1 "is corrupt: its part '.*members-0-3.pt' does not match the digest the manifest holds" -- \
    "${args[@]}" --checkpoint "$dir/b" --resume
  cmp "$part" "$dir/bad-part.pt" || fail "a refused part was overwritten"
  rm "$part"
  expect_exit 1 "is not whole: its part '.*members-0-3.pt' is missing" -- "${args[@]}" --checkpoint "$dir/b" --resume
  cp "$dir/part.pt" "$part"
  # Other data (one label changed) under another path: refused, naming the data set.
  mkdir -p "$dir/other"
  for f in train-images-idx3-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do ln -sf "$data/$f"* "$dir/other/"; done
  if [ -f "$data/train-labels-idx1-ubyte.gz" ]; then gzip -dc "$data/train-labels-idx1-ubyte.gz"; else cat "$data/train-labels-idx1-ubyte"; fi |
    python3 -c "import sys; d = bytearray(sys.stdin.buffer.read()); d[8] = (d[8] + 1) % 10; sys.stdout.buffer.write(d)" \
      >"$dir/other/train-labels-idx1-ubyte"
  expect_exit 2 "made with data=60000+10000:" -- --data "$dir/other" "${opts[@]}" "${args[@]:${#small[@]}}" \
    --checkpoint "$dir/b" --resume
  # The same files under another path resume.
  mkdir -p "$dir/same"
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do ln -sf "$data/$f"* "$dir/same/"; done
  "$nyto" train --data "$dir/same" "${opts[@]}" "${args[@]:${#small[@]}}" --checkpoint "$dir/b" --resume >"$dir/same.out" 2>&1 ||
    fail "resume with the same data elsewhere: $(cat "$dir/same.out")"
  # The same with a kill from outside, at whatever moment the first checkpoint is seen (it may
  # land in the middle of writing the next one: checkpoints are written beside and renamed).
  eargs=("${base[@]}" --batches 60 --momentum 0.9)
  "$nyto" train "${eargs[@]}" --save "$dir/e1.pt" >"$dir/e1.out" 2>&1 || fail "run e1: $(cat "$dir/e1.out")"
  "$nyto" train "${eargs[@]}" --checkpoint "$dir/e" >"$dir/e2.out" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -f "$dir/e/checkpoint.pt" ] && break; sleep 0.05; done
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  "$nyto" train "${eargs[@]}" --checkpoint "$dir/e" --resume --save "$dir/e2.pt" >"$dir/e3.out" 2>&1 ||
    fail "resume after kill -9: $(cat "$dir/e3.out")"
  grep -h "resumed from" "$dir/e3.out"
  same "$dir/e1.pt" "$dir/e2.pt" || fail "kill -9 and resume: final swarm differs"
  # PSO state (velocities, personal and global bests) survives a kill too.
  pargs=("${small[@]}" --model mlp --hidden 32 --mode pso --batches 12 --seed 3)
  "$nyto" train "${pargs[@]}" --save "$dir/pa.pt" >"$dir/pa.out" 2>&1 || fail "pso run: $(cat "$dir/pa.out")"
  "$nyto" train "${pargs[@]}" --checkpoint "$dir/pb" --kill-at-step 7 >/dev/null 2>&1
  "$nyto" train "${pargs[@]}" --checkpoint "$dir/pb" --resume --save "$dir/pb.pt" >"$dir/pb.out" 2>&1 ||
    fail "pso resumed run: $(cat "$dir/pb.out")"
  same "$dir/pa.pt" "$dir/pb.pt" || fail "pso: resumed final swarm differs"
  ;;
evolve-resume)
  # A generation rule's state (an ES mean, DE's population and its fitness, the best member, the
  # fitness batches' order) survives SIGKILL: killed at generation 13 after the checkpoint of
  # generation 10, resumed, the same final swarm and metrics bit for bit. Same seed and threads:
  # the same final report.
  for rule in openai_es de; do
    args=(--data "$data" --model mlp --hidden 16 --particles 6 --generations 20 --fitness-size 200 --eval-every 5
          --eval-size 300 --threads 2 --seed 4 --mode evolve --rule "$src/examples/rules/$rule.nyto")
    "$nyto" train "${args[@]}" --save "$dir/$rule-a.pt" --metrics "$dir/$rule-a.csv" >"$dir/$rule-a.out" 2>&1 ||
      fail "$rule: uninterrupted run: $(cat "$dir/$rule-a.out")"
    "$nyto" train "${args[@]}" --checkpoint "$dir/$rule-ck" --kill-at-step 13 >/dev/null 2>&1
    rc=$?
    [ $rc -eq 137 ] || fail "$rule: killed run exited $rc, expected 137 (SIGKILL)"
    "$nyto" train "${args[@]}" --checkpoint "$dir/$rule-ck" --resume --save "$dir/$rule-b.pt" --metrics "$dir/$rule-b.csv" \
      >"$dir/$rule-b.out" 2>&1 || fail "$rule: resumed run: $(cat "$dir/$rule-b.out")"
    grep -q "resumed from .* at step 10" "$dir/$rule-b.out" || fail "$rule: did not resume at generation 10"
    same "$dir/$rule-a.pt" "$dir/$rule-b.pt" || fail "$rule: resumed final swarm differs from the uninterrupted one"
    cmp "$dir/$rule-a.csv" "$dir/$rule-b.csv" || fail "$rule: resumed metrics differ"
    cmp "$dir/$rule-a-fitness.csv" "$dir/$rule-b-fitness.csv" || fail "$rule: resumed fitness metrics differ"
    "$nyto" train "${args[@]}" --save "$dir/$rule-c.pt" >"$dir/$rule-c.out" 2>&1 || fail "$rule: run c"
    same "$dir/$rule-a.pt" "$dir/$rule-c.pt" || fail "$rule: same seed, different final swarms"
    diff <(grep -Ev 'trained in|per generation' "$dir/$rule-a.out" | tail -n 4) <(grep -Ev 'trained in|per generation' "$dir/$rule-c.out" | tail -n 4) ||
      fail "$rule: same seed, different reports"
  done
  # A corrupt checkpoint: exit 1 naming the file, and the file is left as it was.
  head -c 3000 "$dir/de-ck/checkpoint.pt" >"$dir/cut.pt"
  cp "$dir/cut.pt" "$dir/de-ck/checkpoint.pt"
  expect_exit 1 "de-ck/checkpoint.pt" -- "${args[@]}" --checkpoint "$dir/de-ck" --resume
  cmp "$dir/cut.pt" "$dir/de-ck/checkpoint.pt" || fail "a refused checkpoint was overwritten"
  ;;
evolve-errors)
  ev=(--data "$data" --mode evolve --model mlp --hidden 8 --particles 4 --generations 2 --fitness-size 50 --eval-size 100)
  printf 'x = x + 0.1 * vv\n' >"$dir/unknown.nyto"
  printf 'state m = x[0]\nm = m + 1\n' >"$dir/nox.nyto"
  printf 'state pf = inf\npf = where(f < pf, f, pf)\nx = x + 0\n' >"$dir/kind.nyto"
  printf 'state m: scalar = x[0]\nx = x + 0 * m\n' >"$dir/kind2.nyto"
  printf 'state m = f\nx = x + m\n' >"$dir/initf.nyto"
  printf 'state f = 1\nx = x\n' >"$dir/statef.nyto"
  printf 'y = x * 2\nx = x\n' >"$dir/lost.nyto"
  printf 'state m: partcle = 0\nx = x + m\n' >"$dir/badkind.nyto"
  expect_exit 2 "--mode evolve needs --rule FILE" -- "${ev[@]}"
  expect_exit 2 "has no param 'gamma' (its params: sigma, lr)" -- "${ev[@]}" --rule "$src/examples/rules/openai_es.nyto" --set gamma=1
  # --set reaches a generation rule: lr = 0 leaves the mean where it started.
  "$nyto" train "${ev[@]}" --rule "$src/examples/rules/openai_es.nyto" --save "$dir/a.pt" >/dev/null 2>&1 || fail "run a"
  "$nyto" train "${ev[@]}" --rule "$src/examples/rules/openai_es.nyto" --set lr=0 --save "$dir/b.pt" >/dev/null 2>&1 || fail "run b"
  same "$dir/a.pt" "$dir/b.pt" >/dev/null && fail "--set lr=0 made no difference"
  expect_exit 2 "unknown.nyto:1:15: error\[E0101\]: unknown name 'vv'" -- "${ev[@]}" --rule "$dir/unknown.nyto"
  expect_exit 2 "does not assign 'x'" -- "${ev[@]}" --rule "$dir/nox.nyto"
  expect_exit 2 "kind.nyto:1:7: error\[E0510\]: state 'pf' is a scalar, but the rule assigns it a value that varies per member" -- \
    "${ev[@]}" --rule "$dir/kind.nyto"
  expect_exit 2 "kind2.nyto:1:10: error\[E0510\]: state 'm' is declared a scalar but its initial value is a particle" -- \
    "${ev[@]}" --rule "$dir/kind2.nyto"
  expect_exit 2 "initf.nyto:1:11: error\[E0101\]: .*computed before the first run, when the host binds only x, g" -- \
    "${ev[@]}" --rule "$dir/initf.nyto"
  expect_exit 2 "statef.nyto:1:7: error\[E0206\]: 'f' cannot be a state" -- "${ev[@]}" --rule "$dir/statef.nyto"
  expect_exit 2 "assigns 'y', which is neither x nor a state" -- "${ev[@]}" --rule "$dir/lost.nyto"
  expect_exit 2 "error\[E0207\]: unknown state kind 'partcle'; did you mean 'particle'" -- "${ev[@]}" --rule "$dir/badkind.nyto"
  expect_exit 2 "error\[E0508\]: pick(2) chooses among the other members, so it needs at least 4 members" -- \
    "${ev[@]}" --particles 3 --rule "$src/examples/rules/de.nyto"
  expect_exit 2 "error\[E0206\]: a hybrid rule keeps no state" -- --data "$data" --batches 1 --rule "$src/examples/rules/openai_es.nyto"
  ;;
evolve-*)
  # Every example generation rule, on a small budget: it runs, writes its outputs, and the fitness
  # of the last five generations is below that of the first five: the mean for a search
  # distribution (which moves the whole population), the best for the other methods (PSO's
  # velocities and DE's trials spread the population: its mean rose over 40 generations for 9 of
  # 12 seeds of pso and de while the best fell in all 12; PGPE's mean fell for 6 of 6, its best
  # for 4).
  rule=${case#evolve-}
  "$nyto" train --data "$data" --model mlp --hidden 16 --particles 8 --generations 40 --fitness-size 256 \
    --fixed-batch --eval-every 20 --eval-size 500 --threads 2 --seed 1 --mode evolve \
    --rule "$src/examples/rules/$rule.nyto" --metrics "$dir/m.csv" --checkpoint "$dir/ck" --save "$dir/final.pt" \
    >"$dir/out" 2>"$dir/err"
  finished $? 7
  grep -Eq '^best so far \(fitness [0-9.]+, generation [0-9]+\): test loss [0-9.]+, test accuracy [01]\.[0-9]{4}$' "$dir/out" ||
    fail "no 'best so far' line"
  # A search distribution's mean is found in the rule's IR (x = mu + ...) and tested; the others
  # have none.
  case $rule in
    openai_es|snes|cem|pgpe) want="search mean mu" ;;
    sep_cma_es) want="search mean mean" ;;
    *) want="" ;;
  esac
  if [ -n "$want" ]; then
    grep -Eq "^$want: test loss [0-9.]+, test accuracy [01]\.[0-9]{4}$" "$dir/out" || fail "no '$want' line"
  else
    grep -q "^search mean" "$dir/out" && fail "a search mean reported for $rule"
  fi
  for f in m.csv m-fitness.csv ck/checkpoint.pt ck/swarm.pt final.pt; do
    [ -s "$dir/$f" ] || fail "$f missing or empty"
  done
  stat=best
  [ -n "$want" ] && stat=mean
  awk -F, -v stat="$stat" '
    NR == 1 { if ($0 != "generation,best_fitness,mean_fitness,worst_fitness") { print "bad header: " $0; bad = 1 } next }
    { if ($1 != NR - 2) { print "bad generation: " $0; bad = 1 }
      if (!($2 <= $3 && $3 <= $4)) { print "not best <= mean <= worst: " $0; bad = 1 }
      best[$1] = $2; mean[$1] = $3; rows++ }
    END {
      if (rows != 40) { print "expected 40 rows, got " rows; exit 1 }
      for (g = 0; g < 5; g++) {
        first_best += best[g] / 5; last_best += best[35 + g] / 5
        first_mean += mean[g] / 5; last_mean += mean[35 + g] / 5
      }
      printf "fitness, first five generations -> last five: best %.4f -> %.4f, mean %.4f -> %.4f\n",
        first_best, last_best, first_mean, last_mean
      falls = stat == "mean" ? last_mean < first_mean : last_best < first_best
      if (!falls) { print "the " stat " fitness did not fall"; bad = 1 }
      exit bad
    }' "$dir/m-fitness.csv" || fail "fitness CSV"
  ;;
pso-one-member)
  # One member: its swarm is a copy of the seed, not a view (a view made gbest alias x: E0501).
  "$nyto" train --data "$data" --particles 1 --mode pso --model mlp --hidden 16 --batches 4 \
    --eval-every 2 --eval-size 200 --threads 2 --save "$dir/one.pt" >"$dir/out" 2>&1
  rc=$?
  cat "$dir/out"
  [ $rc -eq 0 ] || fail "exit status $rc"
  tail -n 1 "$dir/out" | grep -Eq '^test accuracy: [01]\.[0-9]{4} \(best member 0\)$' ||
    fail "last line is not 'test accuracy: 0.XXXX (best member 0)'"
  ;;
determinism)
  args=("${small[@]}" --model mlp --hidden 64 --batches 15 --swarm-every 4 --set beta=0.01)
  "$nyto" train "${args[@]}" --seed 5 --save "$dir/1.pt" >"$dir/1.out" 2>&1 || fail "run 1: $(cat "$dir/1.out")"
  "$nyto" train "${args[@]}" --seed 5 --save "$dir/2.pt" >"$dir/2.out" 2>&1 || fail "run 2"
  "$nyto" train "${args[@]}" --seed 6 --save "$dir/3.pt" >"$dir/3.out" 2>&1 || fail "run 3"
  same "$dir/1.pt" "$dir/2.pt" || fail "same seed, different final swarms"
  same "$dir/1.pt" "$dir/3.pt" >/dev/null && fail "different seeds, same final swarm"
  diff <(tail -n 5 "$dir/1.out" | grep -v 'trained in') <(tail -n 5 "$dir/2.out" | grep -v 'trained in') ||
    fail "same seed, different reports"
  ;;
errors)
  printf 'x = x + 0.1*foo\n' >"$dir/unknown.nyto"
  printf 'param a = 1\ny = a*x\n' >"$dir/nox.nyto"
  expect_exit 2 "resnet" -- --model resnet
  expect_exit 2 "particles" -- --particles 0
  expect_exit 2 "mode" -- --mode sgd
  expect_exit 2 "--lr" -- --lr -1
  # Every numeric flag: NaN, infinities and out-of-range values exit 2 with the range, readably.
  expect_exit 2 "--lr: expected a number in (0, 1e30], got 'nan'" -- --lr nan
  expect_exit 2 "--lr: must be a number in (0, 1e30], got 0" -- --lr 0
  expect_exit 2 "--momentum: expected a number in .0, 1., got 'nan'" -- --momentum nan
  expect_exit 2 "--hidden: must be an integer in .1, 65536." -- --hidden 99999999999999999999
  expect_exit 2 "--threads: must be an integer in .1, " -- --threads 4096
  expect_exit 2 "would need .* GB for its parameters" -- --data "$data" --particles 100000 --hidden 65536
  expect_exit 2 "expected a non-negative integer, got '-1'" -- --seed -1
  expect_exit 2 "'1e999' is beyond the range of a double" -- --set alpha=1e999
  expect_exit 2 "is larger than 18446744073709551615" -- --seed 18446744073709551616
  expect_exit 2 "bogus" -- --bogus
  expect_exit 2 "/no/such/dir" -- --data /no/such/dir
  expect_exit 2 "dataset-fashion-mnist" -- --data /no/such/dir
  mkdir -p "$dir/empty"
  expect_exit 2 "train-images-idx3-ubyte" -- --data "$dir/empty"
  expect_exit 2 "foo" -- --data "$data" --rule "$dir/unknown.nyto"
  expect_exit 2 "E0101" -- --data "$data" --rule "$dir/unknown.nyto"
  expect_exit 2 "pso.nyto:13:10: error\[E0206\]: a hybrid rule keeps no state" -- --data "$data" --rule "$src/examples/rules/pso.nyto"
  expect_exit 2 "does not assign 'x'" -- --data "$data" --rule "$dir/nox.nyto"
  # A rule may not assign what the trainer binds as an input only (gbest is the best member).
  printf 'x = x + 0.5*(gbest - x)\ngbest = x\n' >"$dir/gbest.nyto"
  expect_exit 2 "gbest.nyto:2:1: error\[E0205\]: cannot assign to 'gbest'" -- --data "$data" --rule "$dir/gbest.nyto"
  printf 'state v: swarm = 0\nv = 0.5*v + rand()*(best - x)\nx = x + v\nbest = x\n' >"$dir/best.nyto"
  expect_exit 2 "best.nyto:4:1: error\[E0205\]: cannot assign to 'best'" -- --data "$data" --mode pso --rule "$dir/best.nyto"
  expect_exit 2 "no such.nyto" -- --data "$data" --rule "$dir/no such.nyto"
  expect_exit 2 "has no param 'gamma'" -- --data "$data" --set gamma=1
  expect_exit 2 "NAME=VALUE" -- --data "$data" --set alpha
  expect_exit 2 "not a number" -- --data "$data" --set alpha=fast
  expect_exit 2 "--checkpoint" -- --data "$data" --resume
  expect_exit 2 "does not exist" -- --data "$data" --metrics /no/such/dir/m.csv
  # A corrupt data file is an I/O error (exit 1) naming the file.
  mkdir -p "$dir/bad"
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    echo garbage | gzip >"$dir/bad/$f.gz"
  done
  expect_exit 1 "$dir/bad" -- --data "$dir/bad"
  # Truncated or inconsistent data: exit 1 naming the file, and nothing partial cached.
  raw() { if [ -f "$data/$1.gz" ]; then gzip -dc "$data/$1.gz"; else cat "$data/$1"; fi; }
  files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
  for d in cut gz label; do
    mkdir -p "$dir/$d"
    for f in "${files[@]}"; do ln -sf "$data/$f"* "$dir/$d/"; done
  done
  rm -f "$dir/cut/train-images-idx3-ubyte"*
  raw train-images-idx3-ubyte | head -c 16 >"$dir/cut/train-images-idx3-ubyte"  # the header only
  expect_exit 1 "cut/train-images-idx3-ubyte' is not a valid IDX file: its header declares 60000 images" -- \
    --data "$dir/cut" --batches 1
  rm -f "$dir/gz/train-images-idx3-ubyte"*
  raw train-images-idx3-ubyte | gzip -1 | head -c 2000000 >"$dir/gz/train-images-idx3-ubyte.gz"
  NYTO_CACHE_DIR=$dir/gzcache expect_exit 1 "train-images-idx3-ubyte.gz': unexpected end of file" -- \
    --data "$dir/gz" --batches 1
  [ -z "$(find "$dir/gzcache" -name 'train-images*')" ] || fail "a truncated .gz left a file in the cache"
  rm -f "$dir/label/train-labels-idx1-ubyte"*
  raw train-labels-idx1-ubyte | python3 -c "import sys; d = bytearray(sys.stdin.buffer.read()); d[8 + 5] = 12; sys.stdout.buffer.write(d)" \
    >"$dir/label/train-labels-idx1-ubyte"
  expect_exit 1 "label 12 of image 5 is not a class" -- --data "$dir/label" --batches 1
  ;;
diverge)
  # A learning rate that makes the loss NaN: one warning on stderr naming member, step and --lr;
  # the run goes on and exits 0.
  "$nyto" train "${small[@]}" --batches 4 --particles 2 --eval-every 0 --lr 1e30 >"$dir/out" 2>"$dir/err"
  rc=$?
  cat "$dir/out" "$dir/err"
  [ $rc -eq 0 ] || fail "exit status $rc"
  [ "$(grep -c 'warning' "$dir/err")" -eq 1 ] || fail "expected exactly one warning on stderr"
  grep -q "^nyto: warning: the training loss of member [01] is NaN at step [0-9]* (is --lr 1e30 too large?); training goes on$" \
    "$dir/err" || fail "no NaN warning naming member, step and --lr"
  grep -q warning "$dir/out" && fail "the warning went to stdout"
  ;;
outputs)
  # Every output path is checked before training (exit 2: a path of the wrong kind, a missing
  # directory, two outputs naming one file; exit 1: the OS refuses); a failed write exits 1 with
  # the target and the OS's reason, keeps the old file and leaves no temporary file.
  quick=(--data "$data" --particles 2 --batches 2 --eval-every 0 --eval-size 100 --threads 1 --hidden 8)
  # expect_early CODE PATTERN -- ARGS...: as expect_exit, and no training step was run.
  expect_early() {
    expect_exit "$@"
    if grep -q "^step \|trained in" "$dir/out"; then fail "nyto train ${*:4} trained before failing"; fi
  }
  no_temp() { [ -z "$(find "$1" -name '*tmp*')" ] || fail "temporary files left in $1: $(find "$1" -name '*tmp*')"; }
  mkdir -p "$dir/adir" && : >"$dir/afile"
  expect_early 2 "--save $dir/adir: it is a directory" -- "${quick[@]}" --save "$dir/adir"
  expect_early 2 "--metrics $dir/adir: it is a directory" -- "${quick[@]}" --metrics "$dir/adir"
  expect_early 2 "--checkpoint $dir/afile: it exists and is not a directory" -- "${quick[@]}" --checkpoint "$dir/afile"
  mkdir -p "$dir/ckd/checkpoint.pt"
  expect_early 2 "--checkpoint $dir/ckd/checkpoint.pt: it is a directory" -- "${quick[@]}" --checkpoint "$dir/ckd"
  expect_early 2 "it is the file that --metrics writes" -- "${quick[@]}" --save "$dir/x.pt" --metrics "$dir/adir/../x.pt"
  expect_early 2 "directory '$dir/none' does not exist" -- "${quick[@]}" --save "$dir/none/x.pt"
  if mkdir -p "$dir/ro" && mount -t tmpfs -o ro,size=64k tmpfs "$dir/ro" 2>/dev/null; then
    expect_early 1 "cannot write '$dir/ro/m.csv': Read-only file system" -- "${quick[@]}" --metrics "$dir/ro/m.csv"
    expect_early 1 "cannot write '$dir/ro/ck/checkpoint.pt': Read-only file system" -- "${quick[@]}" --checkpoint "$dir/ro/ck"
    umount "$dir/ro"
  else
    echo "note: cannot mount a read-only tmpfs (needs root): read-only checks skipped"
  fi
  if mkdir -p "$dir/disk" && mount -t tmpfs -o size=64k tmpfs "$dir/disk" 2>/dev/null; then
    echo old >"$dir/disk/old.pt"
    cat /dev/zero >"$dir/disk/filler" 2>/dev/null
    expect_exit 1 "cannot write '$dir/disk/old.pt': No space left on device" -- "${quick[@]}" --save "$dir/disk/old.pt"
    expect_exit 1 "No space left on device" -- "${quick[@]}" --checkpoint "$dir/disk/ck"
    [ "$(cat "$dir/disk/old.pt")" = old ] || fail "a failed --save changed the old file"
    no_temp "$dir/disk"
    umount "$dir/disk"
  else
    echo "note: cannot mount a tmpfs (needs root): full-disk checks skipped"
  fi
  # --save and the checkpoint's swarm.pt are one commit: when swarm.pt cannot be put in place (its
  # rename is the 5th: the checkpoint's part and manifest, then the staged --save and swarm.pt,
  # then swarm.pt), the old --save file comes back.
  echo old >"$dir/old.pt"
  NYTO_FAULT=rename:eio@5 expect_exit 1 "cannot write '$dir/ck/swarm.pt': Input/output error; no output was changed" \
    -- "${quick[@]}" --save "$dir/old.pt" --checkpoint "$dir/ck"
  [ "$(cat "$dir/old.pt")" = old ] || fail "--save was replaced though the commit failed"
  [ ! -e "$dir/ck/swarm.pt" ] || fail "ck/swarm.pt was written though the commit failed"
  no_temp "$dir"
  ;;
init-classes)
  # --init: every member starts from a saved model (or member i from member i of a swarm); with a
  # learning rate too small to move a float32 weight the result is the file's own model, so nyto
  # eval gives the same table. --classes trains on a subset of the classes: after training on
  # class 3 alone the model answers 3.
  base=(--data "$data" --threads 2 --model mlp --hidden 32 --eval-every 0 --swarm-every 0)
  "$nyto" train "${base[@]}" --particles 2 --batches 20 --save "$dir/base.pt" >"$dir/out" 2>&1 ||
    fail "base run: $(cat "$dir/out")"
  "$nyto" train "${base[@]}" --particles 2 --batches 3 --lr 1e-30 --init "$dir/base.pt" --save "$dir/same.pt" \
    >"$dir/out" 2>&1 || fail "--init run: $(cat "$dir/out")"
  grep -q ", from $dir/base.pt," "$dir/out" || fail "--init not reported: $(cat "$dir/out")"
  "$nyto" eval --data "$data" --csv "$dir/a.csv" "$dir/base.pt" >/dev/null 2>&1 &&
    "$nyto" eval --data "$data" --csv "$dir/b.csv" "$dir/same.pt" >/dev/null 2>&1 || fail "eval after --init"
  [ "$(cut -d, -f2- "$dir/a.csv")" = "$(cut -d, -f2- "$dir/b.csv")" ] ||
    fail "--init with lr 1e-30 changed the models: $(cat "$dir/a.csv" "$dir/b.csv")"
  # One model file for every member: both members start equal and stay equal (same batches).
  "$nyto" run /dev/stdin --load x="$dir/base.pt" --save m="$dir/one.pt" <<<'m = x[0] + 0*msum(x)' >"$dir/out" 2>&1 ||
    fail "nyto run (member 0 of base): $(cat "$dir/out")"
  "$nyto" train "${base[@]}" --particles 2 --batches 5 --init "$dir/one.pt" --classes 3 --save "$dir/three.pt" \
    >"$dir/out" 2>&1 || fail "--classes run: $(cat "$dir/out")"
  grep -q "(6000 train of classes 3 / 10000 test images)" "$dir/out" || fail "--classes 3 not reported: $(cat "$dir/out")"
  "$nyto" eval --data "$data" --csv "$dir/c.csv" "$dir/three.pt" >"$dir/out" 2>&1 || fail "eval: $(cat "$dir/out")"
  cat "$dir/out"
  # Against the base model (a.csv, member 0): class 3 near perfect, the whole worse.
  awk -F, 'NR == FNR { if (FNR == 2) { base_all = $2; base3 = $6 } next }
           FNR > 1 { if ($6 < 0.95 || $6 <= base3) { print "class 3 accuracy " $6 " (base " base3 ") after training on class 3"; bad = 1 }
                     if ($2 >= base_all) { print "overall accuracy " $2 " (base " base_all ") after training on class 3 alone"; bad = 1 }
                     row[FNR] = $0; sub(/^[^,]*,/, "", row[FNR]) }
           END { if (row[2] != row[3]) { print "members from one file differ"; bad = 1 } exit bad }' "$dir/a.csv" "$dir/c.csv" ||
    fail "--classes 3: $(cat "$dir/a.csv" "$dir/c.csv")"
  # Bad input: a swarm of another size, another structure, a bad class list, a missing file.
  expect_exit 2 "a swarm of 2 members for --particles 3" -- "${base[@]}" --particles 3 --batches 1 --init "$dir/base.pt"
  expect_exit 2 "does not hold an mlp with hidden width 64" -- "${base[@]}" --hidden 64 --particles 2 --batches 1 --init "$dir/base.pt"
  expect_exit 2 "--classes 0-10: '10' is not a class" -- "${base[@]}" --particles 1 --batches 1 --classes 0-10
  expect_exit 1 "missing.pt" -- "${base[@]}" --particles 1 --batches 1 --init "$dir/missing.pt"
  ;;
merge-example)
  # examples/merge/run.sh on its small budget: every model in the table, each fine-tuned model
  # better on its own half than the other one, and every merge (task arithmetic, TIES, DARE,
  # SLERP) better overall than either fine-tuned model.
  "$src/examples/merge/run.sh" --nyto "$nyto" --out "$dir/out" --data "$data" --small >"$dir/log" 2>&1 ||
    fail "run.sh: $(cat "$dir/log")"
  cat "$dir/log"
  awk -F, 'NR > 1 { n = $1; sub(/.*\//, "", n); all[n] = $2; lo[n] = $3; hi[n] = $4; rows++ }
    END {
      if (rows != 7) { print rows " rows, expected 7"; exit 1 }
      a = "ft_0-4.pt[0]"; b = "ft_5-9.pt[0]"
      if (!(lo[a] > lo[b] && hi[b] > hi[a])) { print "fine-tuned models not better on their own classes"; bad = 1 }
      split("task_arithmetic.pt[0] ties.pt dare.pt slerp.pt[0]", merges, " ")
      for (i in merges) { m = merges[i]
        if (!(all[m] > all[a] && all[m] > all[b])) { print "merge " m " " all[m] " not above both fine-tuned models"; bad = 1 } }
      exit bad }' "$dir/out/results.csv" || fail "results.csv: $(cat "$dir/out/results.csv")"
  ;;
dist-equal)
  # The same seed gives the same bits with 1, 2 or 3 processes: pso, hybrid, an ES rule (keyed
  # noise), a DE rule (reads other members). One thread per process, as in the 1-process run.
  d=(--data "$data" --threads 1 --eval-every 0 --seed 11)
  check_same() {  # NAME NPROCS ARGS...: the run with NPROCS processes saves what one process saves
    local name=$1 np=$2
    shift 2
    [ -s "$dir/$name-1.pt" ] || "$nyto" train "${d[@]}" "$@" --save "$dir/$name-1.pt" >"$dir/$name-1.out" 2>&1 ||
      fail "$name, 1 process: $(cat "$dir/$name-1.out")"
    "$nyto" train "${d[@]}" "$@" --nprocs "$np" --save "$dir/$name-$np.pt" >"$dir/$name-$np.out" 2>&1 ||
      fail "$name, $np processes: $(cat "$dir/$name-$np.out")"
    grep -q "^distributed: $np processes" "$dir/$name-$np.out" || fail "$name: no 'distributed: $np processes' line"
    same "$dir/$name-1.pt" "$dir/$name-$np.pt" || fail "$name: $np processes end with other parameters than 1"
  }
  pso=(--mode pso --particles 7 --generations 6 --fitness-size 300)
  cem=(--mode evolve --rule "$src/examples/rules/cem.nyto" --particles 7 --generations 3 --fitness-size 200)
  if [ -n "${NYTO_TEST_SANITIZED:-}" ]; then
    # Under sanitizers (tests/train/CMakeLists.txt): one run of each distributed path (rows,
    # SGD, keyed noise, member folds) instead of every process and thread count; the plain
    # build checks them all.
    check_same pso 3 "${pso[@]}"
    check_same hybrid 2 --mode hybrid --particles 5 --batches 24 --swarm-every 4 --swarm-size 4 --batch-size 32
    check_same es 3 --mode evolve --rule "$src/examples/rules/openai_es.nyto" --particles 8 --generations 5 --fitness-size 300
    check_same cem 3 "${cem[@]}"
  else
    check_same pso 2 "${pso[@]}"
    check_same pso 3 "${pso[@]}"
    hyb=(--mode hybrid --particles 5 --batches 24 --swarm-every 4 --swarm-size 4 --batch-size 32)
    check_same hybrid 2 "${hyb[@]}"
    check_same hybrid 3 "${hyb[@]}"
    check_same es 3 --mode evolve --rule "$src/examples/rules/openai_es.nyto" --particles 8 --generations 5 --fitness-size 300
    check_same de 2 --mode evolve --rule "$src/examples/rules/de.nyto" --particles 6 --generations 5 --fitness-size 300
    # Two threads per process: the same bits as one process of two threads (the mlp's batched
    # fitness groups the members of a rank's block; SGD and the forward passes split each member's
    # work over the threads the same way in every process).
    d=(--data "$data" --threads 2 --eval-every 0 --seed 11)
    check_same pso-t2 3 "${pso[@]}"
    check_same hybrid-t2 2 "${hyb[@]}"
    check_same es-t2 3 --mode evolve --rule "$src/examples/rules/openai_es.nyto" --particles 8 --generations 5 --fitness-size 300
    grep -q "mlp: members batched" "$dir/pso-t2-1.out" ||
      fail "pso-t2: not the batched fitness: $(grep 'fitness evaluation' "$dir/pso-t2-1.out")"
    # A particle state every rank updates alike (c), and SNES: mu's init reads member 0's row, which
    # its owner broadcasts; the tell step reduces keyed noise, not rows.
    printf 'state c: particle = 0\nc = c + 0.001\nx = x + 0.1 * (c - x) + 0.01 * rand()\n' >"$dir/drift.nyto"
    check_same drift 3 --mode evolve --rule "$dir/drift.nyto" --particles 5 --generations 3 --fitness-size 100
    check_same snes 2 --mode evolve --rule "$src/examples/rules/snes.nyto" --particles 6 --generations 4 --fitness-size 300
    # CEM reduces the members' rows (the elite's mean and deviation): folded over the ranks in
    # member order (ProcessGroup::fold), 7 members on 3 ranks (blocks of 3, 2, 2).
    check_same cem 2 "${cem[@]}"
    check_same cem 3 "${cem[@]}"
    # Rules with a parameter axis: PGPE's psum reduces a member sum of keyed noise (every rank
    # computes it whole); sep-CMA-ES's reads member sums of the rows, folded over the ranks block by
    # block.
    check_same pgpe 3 --mode evolve --rule "$src/examples/rules/pgpe.nyto" --particles 6 --generations 4 --fitness-size 200
    sep=(--mode evolve --rule "$src/examples/rules/sep_cma_es.nyto" --particles 5 --generations 3 --fitness-size 200)
    check_same sep_cma_es 2 "${sep[@]}"
    check_same sep_cma_es 3 "${sep[@]}"
    # Who holds what: DE (rows read at random members) the population; the rest their own members.
    for name in pso-3 hybrid-3 pso-t2-3 hybrid-t2-2 es-3 es-t2-3 drift-3 snes-2 cem-2 cem-3 pgpe-3 sep_cma_es-2 \
      sep_cma_es-3; do
      grep -q "each rank holds its own members only" "$dir/$name.out" || fail "$name: $(grep '^distributed' "$dir/$name.out")"
    done
    grep -q "each rank holds the whole population (the rule reads rows at a per-member index" "$dir/de-2.out" ||
      fail "de-2: $(grep '^distributed' "$dir/de-2.out")"
    # ES sends fitness values, not particles: 8 members, 5 generations, 3 ranks: rank 0 sends its 3
    # fitness values (24 bytes) to 2 peers each generation. PSO reads gbest, which its owner sends
    # when it changes; its members are independent, so each rank moves only its own.
    grep -q "rank 0 sent 240 bytes of data in the 5 steps (48 per step)" "$dir/es-3.out" ||
      fail "es: $(grep 'bytes of data' "$dir/es-3.out")"
    # CEM sends its two folds (the elite's mean and deviation, 203,530 float32 each) twice: on to
    # rank 1, and around the ring of the whole fold; and its 3 fitness values to 2 peers:
    # 2 * 2 * 814120 + 48 = 3256528 bytes per generation.
    grep -q "rank 0 sent 9769584 bytes of data in the 3 steps (3256528 per step)" "$dir/cem-3.out" ||
      fail "cem: $(grep 'bytes of data' "$dir/cem-3.out")"
    # PGPE sends fitness values only: rank 0's 2 to 2 peers.
    grep -q "rank 0 sent 128 bytes of data in the 4 steps (32 per step)" "$dir/pgpe-3.out" ||
      fail "pgpe: $(grep 'bytes of data' "$dir/pgpe-3.out")"
  fi
  ;;
dist-env)
  # Launched as torchrun does: one OS process per rank with RANK, WORLD_SIZE, MASTER_ADDR and
  # MASTER_PORT set; the same result as --nprocs, output from rank 0 only.
  a=(--data "$data" --threads 1 --eval-every 0 --seed 12 --mode pso --particles 5 --generations 5 --fitness-size 300)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  for r in 0 1 2; do
    RANK=$r WORLD_SIZE=3 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$nyto" train "${a[@]}" --save "$dir/env.pt" >"$dir/env$r.out" 2>"$dir/env$r.err" &
  done
  wait
  for r in 0 1 2; do [ -s "$dir/env$r.err" ] && fail "rank $r wrote to stderr: $(cat "$dir/env$r.err")"; done
  [ -s "$dir/env1.out" ] && fail "rank 1 printed: $(cat "$dir/env1.out")"
  grep -q "^distributed: 3 processes (rendezvous 127.0.0.1:$port from the environment)" "$dir/env0.out" ||
    fail "rank 0's output: $(cat "$dir/env0.out")"
  "$nyto" train "${a[@]}" --nprocs 3 --save "$dir/np.pt" >"$dir/np.out" 2>&1 || fail "--nprocs 3: $(cat "$dir/np.out")"
  same "$dir/env.pt" "$dir/np.pt" || fail "environment launch and --nprocs differ"
  # The same with flags instead of the environment.
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  for r in 0 1 2; do
    "$nyto" train "${a[@]}" --world-size 3 --rank $r --master 127.0.0.1:$port --save "$dir/flags.pt" \
      >"$dir/fl$r.out" 2>&1 &
  done
  wait
  same "$dir/flags.pt" "$dir/np.pt" || fail "--world-size/--rank/--master and --nprocs differ: $(cat "$dir"/fl*.out)"
  ;;
dist-faults)
  a=(--data "$data" --threads 1 --seed 13 --mode pso --particles 6 --generations 30 --fitness-size 300
     --eval-every 10 --eval-size 200)
  # A rank killed mid-run: the others stop within --timeout, exit 1, naming it; the checkpoint of
  # step 10 is whole, and resuming it with 2 processes ends as an uninterrupted run does.
  start=$(date +%s)
  "$nyto" train "${a[@]}" --nprocs 3 --timeout 10 --checkpoint "$dir/ck" --kill-at-step 15 --kill-rank 2 \
    >"$dir/kill.out" 2>"$dir/kill.err"
  rc=$? took=$(($(date +%s) - start))
  cat "$dir/kill.err"
  [ $rc -eq 1 ] || fail "killed rank: exit $rc, expected 1"
  [ $took -le 40 ] || fail "killed rank: the others took ${took}s to stop"
  grep -q "rank 2 of 3 (pid [0-9]*) was killed by signal 9" "$dir/kill.err" || fail "the launcher does not name rank 2"
  for r in 0 1; do
    grep -q "rank $r: the exchange of the fitness of generation 15 failed: .*rank 2 stopped answering" "$dir/kill.err" ||
      fail "rank $r does not say what it was doing and who stopped"
  done
  # The manifest and the parts of the 3 ranks it names, nothing else (no temporary file).
  parts=$(ls "$dir/ck" | grep '^parts-')
  [ "$(ls "$dir/ck" | grep -v '^parts-')" = checkpoint.pt ] && [ "$(echo "$parts" | wc -l)" = 1 ] ||
    fail "the checkpoint directory holds more than a manifest and one parts directory: $(ls -R "$dir/ck")"
  [ "$(ls "$dir/ck/$parts" | tr '\n' ' ')" = "members-0-2.pt members-2-4.pt members-4-6.pt " ] ||
    fail "not one part per rank: $(ls "$dir/ck/$parts")"
  "$nyto" train "${a[@]}" --nprocs 2 --checkpoint "$dir/ck" --resume --save "$dir/resumed.pt" >"$dir/res.out" 2>&1 ||
    fail "resume with 2 processes: $(cat "$dir/res.out")"
  grep -q "resumed from .* at step 10" "$dir/res.out" || fail "did not resume at step 10: $(cat "$dir/res.out")"
  "$nyto" train "${a[@]}" --save "$dir/whole.pt" >"$dir/whole.out" 2>&1 || fail "uninterrupted run failed"
  same "$dir/resumed.pt" "$dir/whole.pt" || fail "resumed with another world size, the result differs"
  # kill_resume NAME KILL_AT RESUMED_AT ARGS...: killed (rank 1 of 3) at step KILL_AT, after the
  # checkpoint of RESUMED_AT; resumed from it with 2 processes and with 1, both end as an
  # uninterrupted run of 1 process does. The killed run's output is in $dir/NAME-kill.out, the
  # files of its checkpoint in $dir/NAME-kill.files.
  kill_resume() {
    local name=$1 kill_at=$2 resumed_at=$3 np ck rc
    shift 3
    "$nyto" train "$@" --save "$dir/$name-whole.pt" >"$dir/$name-whole.out" 2>&1 ||
      fail "$name, 1 process: $(cat "$dir/$name-whole.out")"
    "$nyto" train "$@" --nprocs 3 --timeout 10 --checkpoint "$dir/$name-ck" --kill-at-step "$kill_at" --kill-rank 1 \
      >"$dir/$name-kill.out" 2>"$dir/$name-kill.err"
    rc=$?
    [ $rc -eq 1 ] || fail "$name, killed rank: exit $rc, expected 1: $(cat "$dir/$name-kill.err")"
    (cd "$dir/$name-ck" && find . -type f | sort) >"$dir/$name-kill.files"
    cp -r "$dir/$name-ck" "$dir/$name-ck1"
    for np in 2 1; do
      ck=$dir/$name-ck; [ $np = 1 ] && ck=$dir/$name-ck1
      "$nyto" train "$@" --nprocs $np --checkpoint "$ck" --resume --save "$dir/$name-$np.pt" >"$dir/$name-$np.out" 2>&1 ||
        fail "$name, resume with $np processes: $(cat "$dir/$name-$np.out")"
      grep -q "resumed from .* at step $resumed_at" "$dir/$name-$np.out" ||
        fail "$name: did not resume at step $resumed_at: $(cat "$dir/$name-$np.out")"
      same "$dir/$name-whole.pt" "$dir/$name-$np.pt" || fail "$name, resumed with $np processes: the result differs"
    done
  }
  # Hybrid with momentum: each rank writes its own members' SGD states in its part.
  kill_resume hybrid 11 8 --data "$data" --threads 1 --seed 5 --mode hybrid --particles 5 --batches 16 --swarm-every 3 \
    --swarm-size 4 --batch-size 32 --momentum 0.9 --eval-every 8 --eval-size 200
  # SNES on blocks (each rank its members; mu and sigma, particles, in the manifest).
  kill_resume snes 12 10 --data "$data" --threads 1 --seed 5 --mode evolve --rule "$src/examples/rules/snes.nyto" \
    --particles 6 --generations 16 --fitness-size 200 --eval-every 5 --eval-size 200
  grep -q "each rank holds its own members only" "$dir/snes-kill.out" || fail "snes: $(grep '^distributed' "$dir/snes-kill.out")"
  [ "$(grep -c '^./parts-.*/members-[024]-[246].pt$' "$dir/snes-kill.files")" = 3 ] ||
    fail "snes: not one part per rank: $(cat "$dir/snes-kill.files")"
  # Settings that differ between ranks: refused by every rank, naming the setting and the rank.
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  b=(--data "$data" --threads 1 --mode pso --particles 4 --generations 2 --fitness-size 100 --eval-every 0)
  "$nyto" train "${b[@]}" --seed 1 --world-size 2 --rank 0 --master 127.0.0.1:$port >"$dir/m0.out" 2>"$dir/m0.err" &
  "$nyto" train "${b[@]}" --seed 2 --world-size 2 --rank 1 --master 127.0.0.1:$port >"$dir/m1.out" 2>"$dir/m1.err"
  rc1=$?
  wait $!
  rc0=$?
  for r in 0 1; do
    grep -q "rank 1 has seed=2 where rank 0 has seed=1" "$dir/m$r.err" || fail "rank $r: $(cat "$dir/m$r.err")"
  done
  [ $rc0 -eq 2 ] && [ $rc1 -eq 2 ] || fail "mismatched settings: exits $rc0 and $rc1, expected 2"
  # A rank that never joins, a port in use: exit 1 within the timeout, with the reason.
  start=$(date +%s)
  expect_exit 1 "the 2 processes did not all join the rendezvous at 127.0.0.1:$port within 2 s" -- \
    "${b[@]}" --world-size 2 --rank 0 --master 127.0.0.1:$port --timeout 2
  [ $(($(date +%s) - start)) -le 15 ] || fail "a missing rank was waited for too long"
  # A master that cannot be reached (nothing listens at the port; a name that does not resolve):
  # exit 1 within the timeout, naming the address.
  for master in 127.0.0.1:$port no-such-host.invalid:29500; do
    start=$(date +%s)
    expect_exit 1 "rank 1: cannot reach the rendezvous at $master within 2 s" -- \
      "${b[@]}" --world-size 2 --rank 1 --master $master --timeout 2
    [ $(($(date +%s) - start)) -le 15 ] || fail "an unreachable master ($master) was waited for too long"
  done
  python3 -c 'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(20)' \
    >"$dir/port" &
  holder=$!
  for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$dir/port" ] && break; sleep 0.2; done
  port=$(cat "$dir/port")
  expect_exit 1 "cannot host the rendezvous at 127.0.0.1:$port" -- "${b[@]}" --world-size 2 --rank 0 --master 127.0.0.1:$port --timeout 2
  kill $holder 2>/dev/null
  # Bad flags: exit 2 before anything runs.
  expect_exit 2 "rank 2 is out of range for a world of 2 processes" -- "${b[@]}" --world-size 2 --rank 2 --master 127.0.0.1:1
  expect_exit 2 "needs the master's address" -- "${b[@]}" --world-size 2 --rank 1
  expect_exit 2 "--master must be HOST:PORT" -- "${b[@]}" --world-size 2 --rank 1 --master nohost
  expect_exit 2 "takes no --world-size" -- "${b[@]}" --nprocs 2 --world-size 2
  expect_exit 2 "--particles 4 is fewer than the 5 processes" -- "${b[@]}" --nprocs 5
  WORLD_SIZE=two expect_exit 2 "WORLD_SIZE must be a whole number" -- "${b[@]}"
  ;;
dist-run)
  # nyto run over several processes: a rule whose members are independent (each rank its own
  # block, rank 0 gathers), one that reads other members (x[i]), an ES-shaped one (each rank its
  # own block; member 0's row from its owner) and a CEM-shaped one (member folds of rows over the
  # ranks), the same files with 1, 2 and 3 processes; only rank 0 writes; ranks with another seed
  # are refused.
  "$nyto" train --data "$data" --threads 1 --mode pso --particles 5 --generations 1 --fitness-size 100 \
    --eval-every 0 --eval-size 100 --save "$dir/s.pt" >"$dir/train.out" 2>&1 || fail "train: $(cat "$dir/train.out")"
  echo 'x = x + 0.1 * randn()' >"$dir/jitter.nyto"
  for np in 1 2 3; do
    "$nyto" run "$dir/jitter.nyto" --load x="$dir/s.pt" --save x="$dir/j$np.pt" --seed 4 --threads 1 --nprocs $np \
      >"$dir/j$np.out" 2>&1 || fail "jitter, $np processes: $(cat "$dir/j$np.out")"
    "$nyto" run "$src/tests/dist/de_mutation.nyto" --load x="$dir/s.pt" --set f=5,4,3,2,1 --save x="$dir/d$np.pt" \
      --seed 4 --threads 1 --nprocs $np >"$dir/d$np.out" 2>&1 || fail "de, $np processes: $(cat "$dir/d$np.out")"
    "$nyto" run "$src/tests/dist/es_step.nyto" --load x="$dir/s.pt" --set f=5,4,3,2,1 --save x="$dir/e$np.pt" \
      --save mu="$dir/mu$np.pt" --seed 4 --threads 1 --nprocs $np >"$dir/e$np.out" 2>&1 ||
      fail "es, $np processes: $(cat "$dir/e$np.out")"
    "$nyto" run "$src/tests/dist/cem_step.nyto" --load x="$dir/s.pt" --set f=5,4,3,2,1 --save x="$dir/c$np.pt" \
      --save mu="$dir/cmu$np.pt" --save sigma="$dir/cs$np.pt" --seed 4 --threads 1 --nprocs $np >"$dir/c$np.out" 2>&1 ||
      fail "cem, $np processes: $(cat "$dir/c$np.out")"
  done
  for np in 2 3; do
    same "$dir/j1.pt" "$dir/j$np.pt" || fail "jitter: $np processes write another swarm than 1"
    same "$dir/d1.pt" "$dir/d$np.pt" || fail "de: $np processes write another swarm than 1"
    same "$dir/e1.pt" "$dir/e$np.pt" || fail "es: $np processes write another swarm than 1"
    same "$dir/mu1.pt" "$dir/mu$np.pt" || fail "es: $np processes write another mean than 1"
    for f in c cmu cs; do
      same "$dir/${f}1.pt" "$dir/$f$np.pt" || fail "cem: $np processes write another $f than 1"
    done
  done
  same "$dir/j1.pt" "$dir/s.pt" >/dev/null 2>&1 && fail "jitter changed nothing"
  # More processes than members: refused by every rank (a usage error), nothing written.
  "$nyto" run "$dir/jitter.nyto" --load x="$dir/s.pt" --save x="$dir/six.pt" --seed 4 --threads 1 --nprocs 6 \
    >"$dir/six.out" 2>&1
  rc=$?
  [ $rc -eq 2 ] || fail "nyto run, 6 processes for 5 members: exit $rc, expected 2: $(cat "$dir/six.out")"
  grep -q "runs over 6 processes but the swarm has 5 members: every rank needs a member" "$dir/six.out" ||
    fail "nyto run, 6 processes for 5 members: $(cat "$dir/six.out")"
  [ -e "$dir/six.pt" ] && fail "nyto run, 6 processes for 5 members, wrote $dir/six.pt"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$nyto" run "$dir/jitter.nyto" --load x="$dir/s.pt" --save x="$dir/m.pt" --seed 1 --world-size 2 --rank 0 \
    --master 127.0.0.1:$port >"$dir/m0.out" 2>&1 &
  "$nyto" run "$dir/jitter.nyto" --load x="$dir/s.pt" --save x="$dir/m.pt" --seed 2 --world-size 2 --rank 1 \
    --master 127.0.0.1:$port >"$dir/m1.out" 2>&1
  rc1=$?
  wait $!
  rc0=$?
  [ $rc0 -eq 2 ] && [ $rc1 -eq 2 ] || fail "nyto run, different seeds: exits $rc0 and $rc1, expected 2"
  grep -q "rank 1 has seed=2 where rank 0 has seed=1" "$dir/m1.out" || fail "$(cat "$dir/m1.out")"
  [ -e "$dir/m.pt" ] && fail "a refused run wrote its output"
  ;;
*)
  echo "unknown case $case"; exit 2 ;;
esac
[ $fails -eq 0 ] && echo "PASS: $case" || echo "$fails failure(s) in $case"
[ $fails -eq 0 ]
