package train

import (
	"fmt"
	"io"
	"runtime"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/backends"
)

// NewBackend returns the fastest backend this binary has (backends.Auto):
// oneDNN when it was built with cgo, otherwise the plain-Go reference
// backend, with a warning on stderr because the reference backend is much
// slower. threads 0 means all cores.
func NewBackend(threads int) (engine.Backend, error) {
	return backends.New(backends.Options{Threads: threads})
}

// CapThreads returns the compute thread count to use for a requested
// --threads n: n itself, unless it is above the number of CPUs this process
// may run on and force is false; then that number, with a warning on warn.
// OpenMP threads beyond the cores wait for each other at every barrier: 64
// threads on 2 cores made a step 50x slower and 1000 hung it for minutes.
// 0 (all cores) is returned unchanged.
func CapThreads(n int, force bool, warn io.Writer) int {
	cpus := runtime.NumCPU()
	if n <= cpus || force {
		return n
	}
	fmt.Fprintf(warn, "simclr: warning: --threads %d is more than the %d CPUs this process can use; using %d (more threads than cores slow every step down; --threads-force uses %d anyway)\n", n, cpus, cpus, n)
	return cpus
}
