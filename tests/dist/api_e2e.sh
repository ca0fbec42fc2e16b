#!/usr/bin/env bash
# The C++ API over several processes (examples/cpp/distributed_swarm.cpp): the same final swarm
# with 1, 2 and 3 processes for a rule whose members are independent (each rank moves its own)
# and one whose members read each other (the swarm is gathered first); ranks started as torchrun
# does. A rank that never comes: the others fail within the timeout, naming the rendezvous.
#   api_e2e.sh PROGRAM SOURCE_DIR WORK_DIR
set -uo pipefail
prog=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for rule in toward_best de_mutation; do
  "$prog" "$src/tests/dist/$rule.nyto" "$work/$rule-1.pt" 12 7 >"$work/$rule-1.log" 2>&1 ||
    fail "$rule alone: $(cat "$work/$rule-1.log")"
  for w in 2 3; do
    p=$(port)
    for ((r = 0; r < w; ++r)); do
      RANK=$r WORLD_SIZE=$w MASTER_ADDR=127.0.0.1 MASTER_PORT=$p GLOG_minloglevel=3 \
        "$prog" "$src/tests/dist/$rule.nyto" "$work/$rule-$w.pt" 12 7 >"$work/$rule-$w-$r.log" 2>&1 &
    done
    wait
    cat "$work/$rule-$w-0.log"
    python3 "$src/tests/train/same_archive.py" "$work/$rule-1.pt" "$work/$rule-$w.pt" ||
      fail "$rule: $w processes end with another swarm than 1: $(cat "$work/$rule-$w"-*.log)"
  done
done
# Independent members exchange fitness values and the best member only: 12 generations of 7
# members over 3 ranks, rank 0 holds 3: 12 x (2 x 24 B of fitness) = 576 B, plus the best member
# (17 floats) when rank 0 owns it, plus the final gather (3 rows x 17 floats x 2 peers = 408 B).
sent=$(sed -n 's/rank 0 sent \([0-9]*\) bytes/\1/p' "$work/toward_best-3-0.log")
[ -n "$sent" ] && [ "$sent" -lt 3000 ] || fail "toward_best, 3 processes: rank 0 sent ${sent:-?} bytes"
# The member reading others gathers the swarm each generation: more than 12 gathers of 3 rows.
sent=$(sed -n 's/rank 0 sent \([0-9]*\) bytes/\1/p' "$work/de_mutation-3-0.log")
[ -n "$sent" ] && [ "$sent" -gt $((12 * 408)) ] || fail "de_mutation, 3 processes: rank 0 sent ${sent:-?} bytes"
# A rank that never joins.
p=$(port)
start=$(date +%s)
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$p GLOG_minloglevel=3 \
  "$prog" "$src/tests/dist/toward_best.nyto" "$work/never.pt" 2 7 3 >"$work/never.log" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "a missing rank: exit $rc"
grep -q "did not all join the rendezvous at 127.0.0.1:$p within 3 s" "$work/never.log" || fail "$(cat "$work/never.log")"
[ $(($(date +%s) - start)) -le 15 ] || fail "a missing rank was waited for too long"
[ $fails -eq 0 ] && echo "PASS" || echo "$fails failure(s)"
[ $fails -eq 0 ]
