// Package par holds simclr's parallel loops over an index range, so that
// the engine, the loss and the evaluation code share one implementation of
// each way of splitting work.
package par

import (
	"sync"
	"sync/atomic"
)

// For splits [0, n) into nw contiguous ranges, range w being
// [w·n/nw, (w+1)·n/nw), and runs f(w, lo, hi) for every w in [0, nw) (some
// ranges are empty when nw > n), each on its own goroutine, the last on the
// caller's. It returns when all have. With nw <= 1 it runs f(0, 0, n).
// The split depends only on n and nw, so per-worker partial results (f
// accumulating into slot w) combine the same way on every run.
func For(n, nw int, f func(w, lo, hi int)) {
	if nw <= 1 {
		f(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range nw - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w, w*n/nw, (w+1)*n/nw)
		}()
	}
	f(nw-1, (nw-1)*n/nw, n)
	wg.Wait()
}

// Each runs f(i) for every i in [0, n) on min(nw, n) goroutines (one of
// them the caller's) that take the next index as they finish one, so
// uneven items balance; f must not depend on which goroutine runs it. With
// nw <= 1 or n <= 1 it runs f(0), ..., f(n-1) in order.
func Each(n, nw int, f func(i int)) {
	nw = min(nw, n)
	if nw <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	run := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			f(i)
		}
	}
	var wg sync.WaitGroup
	for range nw - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	run()
	wg.Wait()
}
