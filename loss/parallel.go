package loss

import (
	"runtime"

	"github.com/simclr-go/simclr/internal/par"
)

// minRowsPerWorker keeps tiny problems on one goroutine, where spawning
// would cost more than the work.
const minRowsPerWorker = 64

// workers is the number of goroutines parallelRows uses for m rows.
func workers(m int) int {
	return max(1, min(runtime.GOMAXPROCS(0), m/minRowsPerWorker))
}

// parallelRows splits [0, m) into nw contiguous ranges and runs fn(w, lo, hi)
// for each (par.For).
func parallelRows(m, nw int, fn func(w, lo, hi int)) { par.For(m, nw, fn) }
