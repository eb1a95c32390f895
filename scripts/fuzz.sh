#!/usr/bin/env bash
# Runs every fuzz target of reachd for a bounded time each and exits non-zero
# when one of them fails. make e2e calls it; by hand:
#
#   FUZZTIME=1m scripts/fuzz.sh
#
# FUZZTIME          how long each target fuzzes (go test -fuzztime), default 10s
# FUZZMINIMIZETIME  how long a new input is minimized, default 5s: without a
#                   bound the default of 60s stalls a short run
# GO                the go command, default go
#
# A failing input is written by go test to <package>/testdata/fuzz/<Target>/;
# commit it with the fix, as a regression seed. Nothing here leaves the
# machine: the targets parse bytes in memory and files in a temp directory.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}

# package target
targets=(
	"./configs FuzzParseConfig"
	"./targets FuzzParseFile"
	"./internal/tomlpos FuzzTomlposIndex"
	"./probe FuzzHTTPResponse"
	"./probe FuzzConnectAnswer"
)

failed=()
for entry in "${targets[@]}"; do
	read -r pkg name <<<"$entry"
	echo "== fuzz $pkg $name for $FUZZTIME"
	# -run '^$': the unit tests run elsewhere; the seed corpus still runs first.
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" \
		-fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" 2>&1 | tail -n 25; then
		failed+=("$pkg $name")
	fi
done

if ((${#failed[@]} > 0)); then
	echo "FAIL: fuzzing found failures in: ${failed[*]}" >&2
	echo "the failing inputs are under <package>/testdata/fuzz/<Target>/:" >&2
	git status --short -- '*/testdata/fuzz/*' >&2 || true
	exit 1
fi
echo "ok: ${#targets[@]} fuzz targets, $FUZZTIME each"
