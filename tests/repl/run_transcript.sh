#!/usr/bin/env bash
# Pipes a transcript through `nyto repl` and checks its output (stdout and stderr, in order, then
# a line "exit N"). Timings ("1.234 ms") are replaced by "# ms" first.
#   EXPECTED = *.expected: compared exactly (UPDATE=1 rewrites it from the actual output).
#   EXPECTED = *.patterns: every line is an extended regular expression some output line matches.
# Runs in a fresh temporary directory, so :save/:load paths are relative to it.
# Usage: [REPL_ARGS="--backend interp"] run_transcript.sh NYTO TRANSCRIPT EXPECTED
set -euo pipefail
nyto=$(realpath "$1"); transcript=$(realpath "$2"); expected=$(realpath -m "$3")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
set +e
"$nyto" repl ${REPL_ARGS:-} < "$transcript" > out.raw 2>&1
rc=$?
set -e
sed -E 's/[0-9]+\.[0-9]+ ms/# ms/g' out.raw > out
echo "exit $rc" >> out
if [[ "$expected" == *.patterns ]]; then
  status=0
  while IFS= read -r pattern; do
    [[ -z "$pattern" ]] && continue
    if ! grep -Eq -- "$pattern" out; then echo "no output line matches: $pattern"; status=1; fi
  done < "$expected"
  if [[ $status != 0 ]]; then echo "--- output:"; cat out; fi
  exit $status
fi
if [[ "${UPDATE:-0}" == 1 ]]; then cp out "$expected"; echo "updated $expected"; exit 0; fi
diff -u "$expected" out
