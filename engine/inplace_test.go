package engine_test

import (
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// residual is a basic block's tail: relu(bn(conv(x)) + x), with the add
// written over the batch norm's output when inPlace is set.
func residual(tp *engine.Tape, in []*engine.Tensor, inPlace bool) *engine.Tensor {
	x, w, g, b := in[0], in[1], in[2], in[3]
	r := tp.BatchNorm(tp.Conv2D(x, w, nil, engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}), g, b, nil, true, false)
	if inPlace {
		return tp.AddReLUInPlace(r, x)
	}
	return tp.AddReLU(r, x)
}

func TestGradAddReLUInPlace(t *testing.T) {
	rng := newRNG(41)
	in := []*engine.Tensor{
		enginetest.Rand(rng, 2, 3, 5, 5), enginetest.Rand(rng, 3, 3, 3, 3),
		enginetest.Rand(rng, 3), enginetest.Rand(rng, 3),
	}
	check(t, in, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
		return tp.Sum(tp.Mul(residual(tp, in, true), awayFromZero(enginetest.Rand(newRNG(5), 2, 3, 5, 5), 0)))
	})
}

// TestAddReLUInPlaceSavesABuffer checks that the in-place add reuses the
// batch norm's buffer (one pool buffer fewer than AddReLU), gives the same
// values, and falls back to a copy when the input's producer needs it.
func TestAddReLUInPlaceSavesABuffer(t *testing.T) {
	rng := newRNG(42)
	in := []*engine.Tensor{
		enginetest.Rand(rng, 2, 4, 6, 6), enginetest.Rand(rng, 4, 4, 3, 3),
		enginetest.Rand(rng, 4), enginetest.Rand(rng, 4),
	}
	for _, x := range in {
		x.SetRequiresGrad(true)
	}
	run := func(inPlace bool) ([]float32, int) {
		tp := engine.NewTape(ref)
		y := residual(tp, in, inPlace)
		out := append([]float32(nil), y.Data()...)
		tp.Backward(tp.Sum(y))
		return out, tp.PoolStats().Tensors
	}
	want, nCopy := run(false)
	got, nInPlace := run(true)
	if nInPlace != nCopy-1 {
		t.Errorf("pool buffers: %d in place vs %d with a copy, want one fewer", nInPlace, nCopy)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("element %d: %g in place, %g with a copy", i, got[i], want[i])
		}
	}

	// A ReLU's backward reads its output, so it must not be overwritten.
	tp := engine.NewTape(ref)
	a := tp.ReLU(in[0])
	before := append([]float32(nil), a.Data()...)
	y := tp.AddReLUInPlace(a, in[0])
	for i, v := range a.Data() {
		if v != before[i] {
			t.Fatalf("AddReLUInPlace overwrote a ReLU output at %d", i)
		}
	}
	if &y.Data()[0] == &a.Data()[0] {
		t.Fatal("AddReLUInPlace shares the storage of a ReLU output")
	}
}

// TestFree checks that Free lets an inference chain reuse buffers, leaves
// recorded tensors alone, and leaves a freed handle without data.
func TestFree(t *testing.T) {
	rng := newRNG(43)
	x := enginetest.Rand(rng, 2, 3, 4, 4)
	chain := func(tp *engine.Tape, free bool) *engine.Tensor {
		h := x
		for range 4 {
			nh := tp.ReLU(tp.Scale(h, 2))
			if free && h != x {
				tp.Free(h)
			}
			h = nh
		}
		return h
	}
	tp := engine.NewTape(ref)
	tp.SetGrad(false)
	want := append([]float32(nil), chain(tp, false).Data()...)
	kept := tp.PoolStats().Tensors
	tp2 := engine.NewTape(ref)
	tp2.SetGrad(false)
	got := chain(tp2, true).Data()
	if n := tp2.PoolStats().Tensors; n >= kept {
		t.Errorf("pool buffers with Free: %d, without: %d; want fewer", n, kept)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("element %d: %g with Free, %g without", i, got[i], want[i])
		}
	}

	// With recording on, Free must keep every tensor: recorded ones, and
	// unrecorded ones a recorded op saved (a frozen layer feeding a
	// trainable one).
	w := enginetest.Rand(rng, 2, 3, 4, 4)
	w.SetRequiresGrad(true)
	tp3 := engine.NewTape(ref)
	frozen := tp3.Scale(x, 2) // x needs no gradient: not recorded
	h := tp3.Mul(frozen, w)   // recorded; saves frozen for w's gradient
	y := tp3.Scale(h, 3)
	tp3.Free(frozen, h)
	if frozen.Len() != x.Len() || h.Len() != x.Len() {
		t.Fatal("Free released a tensor while recording")
	}
	tp3.Backward(tp3.Sum(y))
	for i, g := range w.Grad().Data() {
		if want := 6 * x.Data()[i]; g != want {
			t.Fatalf("grad w[%d] = %g, want %g", i, g, want)
		}
	}

	// A freed unrecorded tensor has no data left.
	tp.Reset()
	s := tp.Scale(enginetest.Rand(rng, 3), 1)
	tp.Free(s)
	if s.Len() != 0 {
		t.Errorf("freed tensor still has %d elements", s.Len())
	}
}

// TestFreeWhileRecording checks that, with recording on, Free releases a
// downsample branch's output (read by no backward: a batch norm without ReLU
// feeding a residual add) but keeps tensors a backward reads, and that the
// gradients match a run that frees nothing.
func TestFreeWhileRecording(t *testing.T) {
	rng := newRNG(44)
	x := enginetest.Rand(rng, 2, 3, 5, 5)
	w1, wd := enginetest.Rand(rng, 4, 3, 3, 3), enginetest.Rand(rng, 4, 3, 1, 1)
	g1, b1, gd, bd := enginetest.Rand(rng, 4), enginetest.Rand(rng, 4), enginetest.Rand(rng, 4), enginetest.Rand(rng, 4)
	params := []*engine.Tensor{x, w1, wd, g1, b1, gd, bd}
	weight := awayFromZero(enginetest.Rand(rng, 2, 4, 5, 5), 0)
	run := func(free bool) [][]float32 {
		for _, p := range params {
			p.SetRequiresGrad(true)
			p.ZeroGrad()
		}
		tp := engine.NewTape(ref)
		conv := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
		c1 := tp.Conv2D(x, w1, nil, conv)
		out := tp.BatchNorm(c1, g1, b1, nil, true, false)
		cd := tp.Conv2D(x, wd, nil, engine.ConvParams{StrideH: 1, StrideW: 1})
		idt := tp.BatchNorm(cd, gd, bd, nil, true, false)
		y := tp.AddReLUInPlace(out, idt)
		if free {
			tp.Free(c1, cd, idt)
			if c1.Len() == 0 || cd.Len() == 0 {
				t.Fatal("Free released a tensor a batch norm's backward reads")
			}
			if idt.Len() != 0 {
				t.Error("Free kept the downsample output, which no backward reads")
			}
		}
		tp.Backward(tp.Sum(tp.Mul(y, weight)))
		var gs [][]float32
		for _, p := range params {
			gs = append(gs, append([]float32(nil), p.Grad().Data()...))
		}
		return gs
	}
	want, got := run(false), run(true)
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("param %d grad[%d]: %g with Free, %g without", i, j, got[i][j], want[i][j])
			}
		}
	}
}
