#!/usr/bin/env bash
# Runs the official ConnectRPC conformance suite against this workspace.
#   conformance/run.sh server [runner flags...]   the server under test
#   conformance/run.sh client [runner flags...]   the client under test
# Installs the runner (connectconformance v1.0.5, via `go install`) into conformance/.tools on
# first use and reuses it afterwards. Prints the runner's summary.
set -euo pipefail
mode="${1:?usage: run.sh server|client [runner flags...]}"
shift
case "$mode" in server | client) ;; *) echo "usage: run.sh server|client" >&2; exit 2 ;; esac
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
runner_version=v1.0.5
tools="$here/.tools/bin"
runner="$tools/connectconformance"
if [[ ! -x "$runner" ]] || ! "$runner" --version 2>/dev/null | grep -q "${runner_version#v}"; then
    echo "installing connectconformance ${runner_version} into ${tools}" >&2
    mkdir -p "$tools"
    GOBIN="$tools" GOFLAGS=-mod=mod go install "connectrpc.com/conformance/cmd/connectconformance@${runner_version}"
fi

profile="${CONFORMANCE_PROFILE:-release}"
cargo build --quiet --locked --profile "$profile" -p connect-conformance --bin "conformance-$mode" --manifest-path "$root/Cargo.toml"
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
case "$profile" in dev) profile_dir=debug ;; *) profile_dir="$profile" ;; esac
program="$target_dir/$profile_dir/conformance-$mode"

known_failing=()
if [[ -s "$here/known-failing-$mode.txt" ]] && grep -qv '^\s*\(#\|$\)' "$here/known-failing-$mode.txt"; then
    known_failing=(--known-failing "@$here/known-failing-$mode.txt")
fi

start=$(date +%s)
set +e
"$runner" --mode "$mode" --conf "$here/config/$mode.yaml" "${known_failing[@]}" "$@" -- "$program"
status=$?
set -e
echo "conformance $mode suite: wall time $(( $(date +%s) - start ))s"
exit $status
