//go:build cgo && !purego

package dnnl

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// TestSteadyStateCreatesNothing runs the same training step three times on
// a pooled tape: after the first, no plan (the only oneDNN allocations) and
// no workspace buffer may be created, and the fused BN+ReLU workspaces must
// be found valid (no fallback plan appears).
func TestSteadyStateCreatesNothing(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(8, 8))
	x := randT(rng, 4, 3, 8, 8)
	w1, w2 := randT(rng, 16, 3, 3, 3), randT(rng, 16, 16, 3, 3)
	g, bb := randT(rng, 16), randT(rng, 16)
	for _, p := range []*engine.Tensor{w1, w2, g, bb} {
		p.SetRequiresGrad(true)
	}
	s1 := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	tp := engine.NewTape(be)
	step := func() {
		h := tp.BatchNorm(tp.Conv2D(x, w1, nil, s1), g, bb, nil, true, true)
		h = tp.AddReLU(tp.BatchNorm(tp.Conv2D(h, w2, nil, s1), g, bb, nil, true, true), h)
		tp.Backward(tp.Mean(tp.GlobalAvgPool(h)))
		tp.Reset()
	}
	counts := func() (plans, ws int) {
		theDisp.do(func() { plans, ws = len(theDisp.plans), len(theDisp.ws) })
		return
	}
	fallbacks := func() (n int) {
		theDisp.do(func() {
			for k := range theDisp.plans {
				if k.op == opBN && k.kind == 3 {
					n++
				}
			}
		})
		return n
	}
	f0 := fallbacks()
	step()
	p1, w1n := counts()
	step()
	step()
	p2, w2n := counts()
	if p1 != p2 || w1n != w2n {
		t.Errorf("plans %d -> %d, workspaces %d -> %d after warm-up", p1, p2, w1n, w2n)
	}
	if f := fallbacks(); f != f0 {
		t.Errorf("BN backward fell back to the y-mask plan %d times: workspace was not valid", f-f0)
	}
}

// TestOneOSThread checks the mechanism behind TestThreadCountBounded: after
// kernels and matrix products from many goroutines, every call into oneDNN
// came from a single OS thread.
func TestOneOSThread(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(10, 10))
	x, y := randT(rng, 64), engine.New(64)
	a, c := randT(rng, 8, 8), engine.New(8, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				be.ReLU(y, x)
				be.MatMul(c, a, a, false, true, 1, 0)
			}
		}()
	}
	wg.Wait()
	if n := cThreadsSeen(); n != 1 {
		t.Errorf("%d OS threads called oneDNN, want 1", n)
	}
}
