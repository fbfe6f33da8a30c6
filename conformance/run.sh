#!/usr/bin/env bash
# Runs the official ConnectRPC conformance suite against this workspace.
#   conformance/run.sh server [runner flags...]   the server under test
#   conformance/run.sh client [runner flags...]   the client under test (HttpClient; with
#       CLIENT_TRANSPORT=h2connection, the HTTP/2 cases over H2Connection)
#   conformance/run.sh proxy ours|reference [runner flags...]
#       the server suite through examples/proxy (conformance-proxy), in front of our
#       conformance server or connect-go's reference server; PROXY_BACKEND_PROTOCOL picks what
#       the proxy speaks to it (grpc, the default; connect; grpc-web)
# Installs the runner (connectconformance v1.0.5, via `go install`) into conformance/.tools on
# first use and reuses it afterwards (the reference server likewise, for proxy runs). Prints
# the runner's summary.
set -euo pipefail
mode="${1:?usage: run.sh server|client|proxy [ours|reference] [runner flags...]}"
shift
case "$mode" in server | client | proxy) ;; *) echo "usage: run.sh server|client|proxy" >&2; exit 2 ;; esac
backend=""
if [[ "$mode" == proxy ]]; then
    backend="${1:?usage: run.sh proxy ours|reference [runner flags...]}"
    shift
    case "$backend" in ours | reference) ;; *) echo "proxy backend: ours or reference" >&2; exit 2 ;; esac
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
conformance_version=v1.0.5
tools="$here/.tools/bin"

# Installs a command of the conformance module into conformance/.tools/bin, unless present.
install_tool() {
    local name="$1"
    if [[ ! -x "$tools/$name" ]] || ! "$tools/$name" --version 2>/dev/null | grep -q "${conformance_version#v}"; then
        echo "installing $name ${conformance_version} into ${tools}" >&2
        mkdir -p "$tools"
        GOBIN="$tools" GOFLAGS=-mod=mod go install "connectrpc.com/conformance/cmd/$name@${conformance_version}"
    fi
}
install_tool connectconformance
runner="$tools/connectconformance"

profile="${CONFORMANCE_PROFILE:-release}"
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
case "$profile" in dev) profile_dir=debug ;; *) profile_dir="$profile" ;; esac
build() {
    cargo build --quiet --locked --profile "$profile" -p connect-conformance --bin "$1" --manifest-path "$root/Cargo.toml"
    echo "$target_dir/$profile_dir/$1"
}

case "$mode" in
    server | client)
        command=("$(build "conformance-$mode")")
        runner_mode="$mode"
        config="$here/config/$mode.yaml"
        known="$here/known-failing-$mode.txt"
        if [[ "$mode" == client && "${CLIENT_TRANSPORT:-pooled}" == h2connection ]]; then
            # The HTTP/2 cases over one H2Connection per server instead of the pooled client.
            command+=(--transport h2connection)
            config="$here/config/client-h2.yaml"
        fi
        ;;
    proxy)
        if [[ "$backend" == reference ]]; then
            install_tool referenceserver
            backend_command=("$tools/referenceserver")
        else
            backend_command=("$(build conformance-server)")
        fi
        command=("$(build conformance-proxy)" --backend-protocol "${PROXY_BACKEND_PROTOCOL:-grpc}" -- "${backend_command[@]}")
        runner_mode=server
        config="$here/config/server.yaml"
        known="$here/known-failing-proxy.txt"
        ;;
esac

known_failing=()
if [[ -s "$known" ]] && grep -qv '^\s*\(#\|$\)' "$known"; then
    known_failing=(--known-failing "@$known")
fi

start=$(date +%s)
set +e
"$runner" --mode "$runner_mode" --conf "$config" "${known_failing[@]}" "$@" -- "${command[@]}"
status=$?
set -e
echo "conformance $mode${backend:+ ($backend backend)}${CLIENT_TRANSPORT:+ ($CLIENT_TRANSPORT)} suite: wall time $(( $(date +%s) - start ))s"
exit $status
