//go:build cgo && !purego

package dnnl

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// repeatGradients computes the parameter gradients of a small
// conv-BN-ReLU residual network calls times on one tape and returns how
// many of the repetitions differ, bit for bit, from the first, and the
// largest relative difference seen.
func repeatGradients(t *testing.T, be engine.Backend, calls int) (differ int, worst float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(8, 8))
	x := randT(rng, 32, 3, 16, 16)
	w1, w2 := randT(rng, 32, 3, 3, 3), randT(rng, 32, 32, 3, 3)
	g, bb := randT(rng, 32), randT(rng, 32)
	params := []*engine.Tensor{w1, w2, g, bb}
	for _, p := range params {
		p.SetRequiresGrad(true)
	}
	s1 := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	tp := engine.NewTape(be)
	var first []float32
	for range calls {
		for _, p := range params {
			p.ZeroGrad()
		}
		h := tp.BatchNorm(tp.Conv2D(x, w1, nil, s1), g, bb, nil, true, true)
		h = tp.AddReLU(tp.BatchNorm(tp.Conv2D(h, w2, nil, s1), g, bb, nil, true, true), h)
		tp.Backward(tp.Mean(tp.GlobalAvgPool(h)))
		var all []float32
		for _, p := range params {
			all = append(all, p.Grad().Data()...)
		}
		tp.Reset()
		if first == nil {
			first = all
			continue
		}
		d := 0.0
		for i := range all {
			if math.Float32bits(all[i]) != math.Float32bits(first[i]) {
				d = math.Max(d, math.Abs(float64(all[i]-first[i]))/math.Max(1e-12, math.Abs(float64(first[i]))))
			}
		}
		if d > 0 {
			differ++
			worst = math.Max(worst, d)
		}
	}
	return differ, worst
}

// TestDeterministicRepeatedGradients: with Options.Deterministic, repeated
// gradient computations on 2 threads are bit-identical.
func TestDeterministicRepeatedGradients(t *testing.T) {
	t.Setenv("SIMCLR_CONV_ALGO", "auto")
	be, err := NewWithOptions(Options{Threads: 2, Deterministic: true})
	if err != nil {
		t.Skipf("oneDNN unavailable: %v", err)
	}
	if n, worst := repeatGradients(t, be, 40); n > 0 {
		t.Errorf("%d of 39 repeated gradient computations differ from the first (relative difference up to %.2g)", n, worst)
	}
}
