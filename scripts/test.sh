#!/usr/bin/env bash
# The full test suite: vet, the tests with oneDNN, and the engine's
# pure-Go build (no C library) tested on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
go vet ./...
CGO_ENABLED=0 go vet ./...
go test -timeout 12m ./...
CGO_ENABLED=0 go test -timeout 5m ./engine/... ./loss ./optim
