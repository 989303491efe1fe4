package par

import (
	"sync/atomic"
	"testing"
)

// Every index runs exactly once, and For's ranges are the documented ones.
func TestForCoversRangesOnce(t *testing.T) {
	for _, n := range []int{0, 1, 5, 64, 1000} {
		for _, nw := range []int{-1, 0, 1, 2, 3, 7, 2000} {
			hits := make([]atomic.Int32, n)
			var calls atomic.Int32
			For(n, nw, func(w, lo, hi int) {
				calls.Add(1)
				if eff := max(nw, 1); lo != w*n/eff || hi != (w+1)*n/eff {
					t.Errorf("n=%d nw=%d: worker %d got [%d,%d)", n, nw, w, lo, hi)
				}
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			if want := max(nw, 1); int(calls.Load()) != want {
				t.Errorf("n=%d nw=%d: %d calls, want %d", n, nw, calls.Load(), want)
			}
			for i := range hits {
				if hits[i].Load() != 1 {
					t.Fatalf("n=%d nw=%d: index %d ran %d times", n, nw, i, hits[i].Load())
				}
			}
		}
	}
}

func TestEachCoversOnce(t *testing.T) {
	for _, n := range []int{0, 1, 5, 1000} {
		for _, nw := range []int{-1, 0, 1, 4, 2000} {
			hits := make([]atomic.Int32, n)
			Each(n, nw, func(i int) { hits[i].Add(1) })
			for i := range hits {
				if hits[i].Load() != 1 {
					t.Fatalf("n=%d nw=%d: index %d ran %d times", n, nw, i, hits[i].Load())
				}
			}
		}
	}
	// In order on one worker.
	var got []int
	Each(4, 1, func(i int) { got = append(got, i) })
	if len(got) != 4 || got[0] != 0 || got[3] != 3 {
		t.Errorf("serial order %v", got)
	}
}
