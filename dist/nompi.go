//go:build !mpi || !cgo

package dist

import "fmt"

// MPIAvailable reports whether this binary was built with MPI support
// (build tag `mpi`, with cgo).
const MPIAvailable = false

func initMPI(n int) (Comm, error) {
	if n == 1 {
		return Single(), nil
	}
	return nil, fmt.Errorf("this simclr binary was built without MPI support, but it was started by an MPI launcher as rank %d of %d: "+
		"refusing to run %d independent copies of the training; rebuild with `go build -tags mpi ./cmd/simclr` (needs cgo and libopenmpi-dev; scripts/setup.sh installs it)",
		launchedRank(), n, n)
}
