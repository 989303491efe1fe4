package engine_test

import (
	"runtime"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

func grads(ts ...*engine.Tensor) [][]float32 {
	var out [][]float32
	for _, t := range ts {
		out = append(out, append([]float32(nil), t.Grad().Data()...))
	}
	return out
}

// Leaf gradients accumulate over Backward calls until ZeroGrad, like PyTorch.
func TestLeafGradAccumulates(t *testing.T) {
	rng := newRNG(41)
	x := enginetest.Rand(rng, 2, 3)
	w := enginetest.Rand(rng, 4, 3)
	tp := engine.NewTape(ref)
	step := func() {
		tp.Backward(tp.Sum(tp.Mul(tp.Linear(x, w, nil), tp.Linear(x, w, nil))))
		tp.Reset()
	}
	step()
	once := grads(x, w)
	step()
	twice := grads(x, w)
	for k := range once {
		for i := range once[k] {
			if d := twice[k][i] - 2*once[k][i]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("input %d element %d: after two steps %g, want 2*%g", k, i, twice[k][i], once[k][i])
			}
		}
	}
	w.ZeroGrad()
	for _, v := range w.Grad().Data() {
		if v != 0 {
			t.Fatal("ZeroGrad left a non-zero gradient")
		}
	}
}

// With recording off nothing is recorded, yet training-mode batch norm still
// updates its running statistics (as under torch.no_grad()).
func TestNoGrad(t *testing.T) {
	rng := newRNG(42)
	x := enginetest.Rand(rng, 4, 2, 3, 3)
	gamma, beta := enginetest.Rand(rng, 2), enginetest.Rand(rng, 2)
	st := engine.NewBNStats(2)
	tp := engine.NewTape(ref)
	tp.SetGrad(false)
	y := tp.Sum(tp.BatchNorm(x, gamma, beta, st, true, false))
	if y.RequiresGrad() {
		t.Error("output requires grad with recording off")
	}
	if st.Mean.Data()[0] == 0 || st.Var.Data()[0] == 1 {
		t.Error("running statistics not updated")
	}
	func() {
		defer func() { _ = recover() }()
		tp.Backward(y)
		t.Error("Backward of an unrecorded loss did not panic")
	}()
}

// Custom ops may return gradOut itself, or one tensor for several inputs.
func TestCustomSharedGradients(t *testing.T) {
	rng := newRNG(43)
	a, b := enginetest.Rand(rng, 3, 2), enginetest.Rand(rng, 3, 2)
	check(t, []*engine.Tensor{a, b}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
		y := tp.Alloc(3, 2)
		for i := range y.Data() {
			y.Data()[i] = in[0].Data()[i] + in[1].Data()[i]
		}
		tp.Custom(y, in, func(g *engine.Tensor) []*engine.Tensor { return []*engine.Tensor{g, g} })
		return tp.Mul(tp.Scale(y, 2), y) // y used twice downstream
	})
}

// The reference kernels give bit-identical results on one goroutine and on
// several (each output element is computed by one task in a fixed order).
func TestReferenceParallelDeterministic(t *testing.T) {
	rng := newRNG(44)
	x := enginetest.Rand(rng, 4, 8, 16, 16)
	w := enginetest.Rand(rng, 8, 8, 3, 3)
	gamma, beta := enginetest.Rand(rng, 8), enginetest.Rand(rng, 8)
	a, b := enginetest.Rand(rng, 64, 96), enginetest.Rand(rng, 96, 80)
	run := func() [][]float32 {
		x.ZeroGrad()
		w.ZeroGrad()
		a.ZeroGrad()
		gamma.ZeroGrad()
		tp := engine.NewTape(ref)
		h := tp.BatchNorm(tp.Conv2D(x, w, nil, engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}), gamma, beta, nil, true, true)
		h = tp.MaxPool2D(h, engine.PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1})
		l := tp.Add(tp.Sum(h), tp.Sum(tp.MatMul(a, b, false, false)))
		tp.Backward(l)
		return append(grads(x, w, gamma, a), append([]float32(nil), h.Data()...))
	}
	prev := runtime.GOMAXPROCS(1)
	one := run()
	runtime.GOMAXPROCS(max(prev, 4))
	many := run()
	runtime.GOMAXPROCS(prev)
	for k := range one {
		for i := range one[k] {
			if one[k][i] != many[k][i] {
				t.Fatalf("result %d element %d: %g on one goroutine, %g on several", k, i, one[k][i], many[k][i])
			}
		}
	}
}
