package loss

import (
	"runtime"
	"sync"
)

// minRowsPerWorker keeps tiny problems on one goroutine, where spawning
// would cost more than the work.
const minRowsPerWorker = 64

// workers is the number of goroutines parallelRows uses for m rows.
func workers(m int) int {
	return max(1, min(runtime.GOMAXPROCS(0), m/minRowsPerWorker))
}

// parallelRows splits [0, m) into nw contiguous ranges and runs fn(w, lo, hi)
// for each on its own goroutine (the last on the caller's).
func parallelRows(m, nw int, fn func(w, lo, hi int)) {
	if nw <= 1 {
		fn(0, 0, m)
		return
	}
	var wg sync.WaitGroup
	for w := range nw {
		lo, hi := w*m/nw, (w+1)*m/nw
		if w == nw-1 {
			fn(w, lo, hi)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w, lo, hi)
		}()
	}
	wg.Wait()
}
