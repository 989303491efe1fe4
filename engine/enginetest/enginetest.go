// Package enginetest holds test helpers for package engine and the code
// built on it: CheckBackend, the conformance suite that every
// engine.Backend passes (each kernel against float64 oracles, in every
// layout the backend produces, and the tape's gradients on it), and
// CheckGrad, a finite-difference gradient checker. A new backend's test is
//
//	func TestConformance(t *testing.T) { enginetest.CheckBackend(t, myBackend) }
//
// and a typical gradient test:
//
//	rng := rand.New(rand.NewPCG(1, 2))
//	x, w := enginetest.Rand(rng, 2, 3), enginetest.Rand(rng, 4, 3)
//	enginetest.CheckGrad(t, engine.Reference(), []*engine.Tensor{x, w},
//		func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
//			return tp.LogSoftmax(tp.Linear(in[0], in[1], nil))
//		}, enginetest.DefaultTol)
package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// MaxChecked is how many elements of each input CheckGrad perturbs; larger
// inputs get a random (seeded, so repeatable) subset.
var MaxChecked = 200

// Step is the finite-difference step h. With float32 storage a step near
// 1e-2 balances truncation error (O(h^2) for central differences) against
// rounding noise in the forward pass (O(eps32/h)).
var Step = 1e-2

// DefaultTol is a tolerance that sound ops pass with a wide margin and
// wrong gradients (even off by a few percent) fail; see CheckGrad.
const DefaultTol = 1e-2

// CheckGrad checks the gradients that engine's Backward computes for f
// against central finite differences, failing t (with Errorf) on mismatch.
// It returns whether the check passed.
//
// f builds a tensor from inputs on the tape it is given (any shape and
// layout). CheckGrad turns it into the scalar loss L = sum(R*f(inputs))
// with a fixed random R, so that every output element matters and sums that
// are invariant (like sum(BatchNorm(x))) do not hide mistakes. The analytic
// gradient comes from one Backward of L; the numerical one perturbs each
// checked element x_j of every input with RequiresGrad by ±h, evaluating L
// in float64 from f's float32 outputs:
//
//	num_j = (L(x+h e_j) - L(x-h e_j)) / (x_j+h - (x_j-h))  (actual float32 steps)
//
// The check passes when, for each checked element,
//
//	|ana_j - num_j| <= tol * max(|ana_j|, |num_j|, 0.1*scale) + 1e-7
//
// where scale is the largest |num| over the input's checked elements. An
// input without a gradient after Backward counts as a zero gradient. The
// floor keeps near-zero gradients from being judged on their rounding noise
// (about eps32*|L|/h); relative errors of sound ops are about 1e-4 with
// h=1e-2, so tol=1e-2 (DefaultTol) leaves a margin of ~100 while a
// gradient off by 5% fails. f must be deterministic and smooth at the
// inputs (keep ReLU inputs and max-pool ties more than h away from kinks).
// f may call any tape op; it runs with gradient recording both on and off.
//
// Inputs must be Plain leaves; their gradients are zeroed before and left
// holding the analytic gradient afterwards. b runs all the kernels.
func CheckGrad(t testing.TB, b engine.Backend, inputs []*engine.Tensor, f func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor, tol float64) bool {
	t.Helper()
	return checkGrad(t, b, inputs, f, tol, MaxChecked)
}

// checkGrad is CheckGrad perturbing at most maxChecked elements per input.
func checkGrad(t testing.TB, b engine.Backend, inputs []*engine.Tensor, f func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor, tol float64, maxChecked int) bool {
	t.Helper()
	tp := engine.NewTape(b)
	rng := rand.New(rand.NewPCG(1, 2))

	// Projection weights R, sized by the first evaluation.
	tp.SetGrad(false)
	out := tp.Plain(f(tp, inputs))
	r := make([]float32, out.Len())
	for i := range r {
		r[i] = float32(rng.Float64()*2 - 1)
	}
	outShape := append([]int(nil), out.Shape()...)
	tp.Reset()

	loss := func() float64 {
		defer tp.Reset()
		o := tp.Plain(f(tp, inputs))
		if o.Len() != len(r) {
			panic(fmt.Sprintf("enginetest: CheckGrad: f returned %v, then %v", outShape, o.Shape()))
		}
		var s float64
		for i, v := range o.Data() {
			s += float64(r[i]) * float64(v)
		}
		return s
	}

	// Analytic gradients.
	for _, x := range inputs {
		x.ZeroGrad()
	}
	tp.SetGrad(true)
	rt := tp.Alloc(outShape...)
	copy(rt.Data(), r)
	l := tp.Sum(tp.Mul(tp.Plain(f(tp, inputs)), rt))
	tp.Backward(l)
	tp.Reset()
	tp.SetGrad(false)

	ok := true
	for k, x := range inputs {
		if !x.RequiresGrad() {
			continue
		}
		ana := make([]float32, x.Len()) // no Grad: f does not depend on x
		if x.Grad() != nil {
			ana = x.Grad().Data()
		}
		xd := x.Data()
		idx := make([]int, len(xd))
		for i := range idx {
			idx[i] = i
		}
		if len(idx) > maxChecked {
			rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			idx = idx[:maxChecked]
		}
		num := make([]float64, len(idx))
		for m, j := range idx {
			orig := xd[j]
			xd[j] = orig + float32(Step)
			hp := float64(xd[j])
			lp := loss()
			xd[j] = orig - float32(Step)
			hm := float64(xd[j])
			lm := loss()
			xd[j] = orig
			num[m] = (lp - lm) / (hp - hm)
		}
		var scale float64
		for _, v := range num {
			scale = math.Max(scale, math.Abs(v))
		}
		bad := 0
		for m, j := range idx {
			a, n := float64(ana[j]), num[m]
			lim := tol*math.Max(math.Max(math.Abs(a), math.Abs(n)), 0.1*scale) + 1e-7
			if !(math.Abs(a-n) <= lim) { // negated so NaN fails
				if bad < 5 {
					t.Errorf("CheckGrad: input %d %v element %d: analytic %.6g, numerical %.6g (|diff| %.3g > %.3g)",
						k, x.Shape(), j, a, n, math.Abs(a-n), lim)
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("CheckGrad: input %d %v: %d of %d checked elements differ", k, x.Shape(), bad, len(idx))
			ok = false
		}
	}
	return ok
}

// Rand returns a Plain leaf of the given shape with values uniform in
// [-1, 1) from rng, marked as requiring grad.
func Rand(rng *rand.Rand, shape ...int) *engine.Tensor {
	t := engine.New(shape...)
	d := t.Data()
	for i := range d {
		d[i] = float32(rng.Float64()*2 - 1)
	}
	t.SetRequiresGrad(true)
	return t
}

// Renamed returns b's kernels under another name and capabilities, for
// tests of code that chooses by Caps (and must not choose by name).
func Renamed(b engine.Backend, name string, caps engine.Caps) engine.Backend {
	return renamed{b, name, caps}
}

type renamed struct {
	engine.Backend
	name string
	caps engine.Caps
}

func (r renamed) Name() string      { return r.name }
func (r renamed) Caps() engine.Caps { return r.caps }
