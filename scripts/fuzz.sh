#!/usr/bin/env bash
# Runs every Go fuzz target of the module, one after the other, and prints a
# table of the executions each survived. Targets are found, not listed: the
# packages whose _test.go files declare `func FuzzXxx(f *testing.F)`, then
# `go test -list '^Fuzz'` in each, so a new target is picked up and a
# removed one dropped. See docs/FUZZ.md.
#
#   scripts/fuzz.sh                          # 60s per target
#   FUZZTIME=1000000x scripts/fuzz.sh        # 10^6 executions per target
#   scripts/fuzz.sh 'unet FuzzParseConfig$'  # only "pkg/dir Target" matching a regexp
#
# Settings (environment): FUZZTIME (a duration, or Nx for N executions;
# default 60s), FUZZ_PARALLEL (fuzzing workers per target, default 1, so a
# shared machine stays usable), FUZZ_MINIMIZETIME (how long to shrink each
# new interesting or failing input, default 1000x: a thousand tries; Go's
# default of 60s lets targets with large seeds, such as the LDM yaml, spend
# most of a run minimizing, and a time limit races the worker, which is
# then killed and restarted), FUZZ_LOGDIR (where the per-target logs go;
# default a temp dir).
#
# A failing target leaves its input under the package's
# testdata/fuzz/<Target>/: keep it as a regression case once fixed. The
# script exits non-zero when any target fails.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
FUZZ_MINIMIZETIME=${FUZZ_MINIMIZETIME:-1000x}
filter=${1:-.}
logs=${FUZZ_LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/latentfarm-fuzz.XXXXXX")}
mkdir -p "$logs"

# Packages with a fuzz target, then the targets go test itself lists.
mapfile -t dirs < <(git ls-files -co --exclude-standard -- '*_test.go' |
  xargs grep -l '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' | xargs -n1 dirname | sort -u)
targets=()
for d in "${dirs[@]}"; do
  if ! list=$("$GO" test -list '^Fuzz' "./$d" 2>&1); then
    echo "$list" >&2
    echo "fuzz: cannot list the targets of ./$d" >&2
    exit 1
  fi
  for name in $(grep '^Fuzz' <<<"$list"); do
    [[ "$d $name" =~ $filter ]] && targets+=("./$d $name")
  done
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no target matches $filter" >&2
  exit 1
fi

echo "fuzz: ${#targets[@]} targets, $FUZZTIME each, $FUZZ_PARALLEL worker(s), logs in $logs" >&2
rows=()
failed=0
for t in "${targets[@]}"; do
  pkg=${t% *} name=${t#* }
  log="$logs/$(echo "${pkg#./}" | tr / _)_$name.log"
  echo "fuzz: $pkg $name" >&2
  start=$(date +%s)
  status=ok
  "$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZ_MINIMIZETIME" \
    -parallel "$FUZZ_PARALLEL" "$pkg" >"$log" 2>&1 || status=FAIL
  wall=$(($(date +%s) - start))
  # The last progress line carries the total: "fuzz: elapsed: 1m0s, execs: 1913716 (...)".
  execs=$(sed -n 's/^fuzz: elapsed: .*, execs: \([0-9][0-9]*\) .*/\1/p' "$log" | tail -1)
  if [ "$status" = FAIL ]; then
    failed=$((failed + 1))
    grep -E 'Failing input written to|--- FAIL|_test.go:[0-9]+:' "$log" | head -5 >&2 || true
  fi
  rows+=("$(printf '%-28s %-28s %12s %8s  %s' "$name" "${pkg#./}" "${execs:-?}" "${wall}s" "$status")")
done

printf '\n%-28s %-28s %12s %8s  %s\n' target package execs wall status
for r in "${rows[@]}"; do echo "$r"; done
if [ "$failed" -gt 0 ]; then
  echo "fuzz: $failed of ${#targets[@]} targets failed; logs in $logs" >&2
  exit 1
fi
