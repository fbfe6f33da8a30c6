#!/usr/bin/env bash
# Regenerates conformance/src/gen from the conformance runner's own .proto files, with this
# workspace's code generator. Needs Go (to fetch the module) — building the workspace does not.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=v1.0.5
dir="$(go mod download -json "connectrpc.com/conformance@${VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
protos="${dir}/proto"
rm -rf src/gen && mkdir -p src/gen
cargo run --quiet -p connect-codegen --bin connect-codegen -- \
    --out src/gen --include "${protos}" \
    "${protos}"/connectrpc/conformance/v1/*.proto
echo "generated $(ls src/gen | wc -l) files from connectrpc.com/conformance@${VERSION}"
