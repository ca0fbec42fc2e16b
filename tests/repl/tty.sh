#!/usr/bin/env bash
# nyto repl on a terminal (a pseudo-terminal from util-linux's `script`): the prompt, tab
# completion of a session name and of a built-in function, colours in diagnostics, :quit.
# Skipped (77) without `script`. Usage: tty.sh NYTO
set -uo pipefail
command -v script >/dev/null || exit 77
nyto=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf ':new net mlp hidden=1 seed=1\nne\t\nsigm\t(net) - 1\nnet + nope\n:quit\n' |
  HOME="$work" timeout 60 script -qec "$nyto repl --no-history" /dev/null > "$work/raw" 2>&1
rc=$?
tr -d '\r' < "$work/raw" > "$work/out"
status=0
expect() {
  if ! grep -aEq -- "$1" "$work/out"; then echo "no output line matches: $1"; status=1; fi
}
expect '^nyto> :new net mlp hidden=1 seed=1'
expect '^net: particle Mlp#1, 805 params'
expect '^particle Mlp#1, 805 params in 4 tensors: mean=0\.00216135'  # "ne" completed to "net"
expect 'oid \(net\) - 1'                                # "sigm" completed to "sigmoid "
expect 'mean=-0\.499495'                                # sigmoid(net) - 1 ran
expect $'<repl>:1:7: \e\\[1;31merror\e\\[0m\\[E0101\\]'  # a coloured diagnostic
[[ $rc == 0 ]] || { echo "exit status $rc"; status=1; }
if [[ $status != 0 ]]; then echo "--- output:"; cat -v "$work/out"; fi
exit $status
