#!/usr/bin/env bash
# The full test suite: vet, the tests with oneDNN, the MPI build's tests
# (collectives and the 1/2/4-rank equivalence run under mpirun), and the
# engine's pure-Go build (no C library) tested on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
go vet ./...
CGO_ENABLED=0 go vet ./...
go test -timeout 12m ./...
go vet -tags mpi ./dist ./cmd/simclr
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
go test -tags mpi -timeout 5m -run 'MPI' ./dist ./cmd/simclr
CGO_ENABLED=0 go test -timeout 5m ./engine/... ./loss ./optim
