package enginetest_test

import (
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

var ref = engine.Reference()

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 99)) }

// cube is y = x^3 as a Custom op whose gradient is multiplied by gradScale
// (1 for the true gradient).
func cube(tp *engine.Tape, x *engine.Tensor, gradScale float32) *engine.Tensor {
	y := tp.Alloc(x.Shape()...)
	for i, v := range x.Data() {
		y.Data()[i] = v * v * v
	}
	tp.Custom(y, []*engine.Tensor{x}, func(g *engine.Tensor) []*engine.Tensor {
		d := tp.Alloc(x.Shape()...)
		for i, v := range x.Data() {
			d.Data()[i] = 3 * v * v * g.Data()[i] * gradScale
		}
		return []*engine.Tensor{d}
	})
	return y
}

// fakeT records failures instead of failing the real test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Helper()               {}

// The checker must reject wrong gradients: here off by 5% and, separately,
// with one element's sign flipped.
func TestCheckGradRejectsWrongGradient(t *testing.T) {
	rng := newRNG(14)
	x := enginetest.Rand(rng, 3, 4)
	for _, tc := range []struct {
		name string
		f    func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor
	}{
		{"scaled", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return cube(tp, in[0], 1.05) }},
		{"oneElement", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			y := tp.Alloc(in[0].Shape()...)
			copy(y.Data(), in[0].Data())
			tp.Custom(y, in[:1], func(g *engine.Tensor) []*engine.Tensor {
				d := tp.Alloc(g.Shape()...)
				copy(d.Data(), g.Data())
				d.Data()[5] = -d.Data()[5]
				return []*engine.Tensor{d}
			})
			return y
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeT{TB: t}
			if enginetest.CheckGrad(ft, ref, []*engine.Tensor{x}, tc.f, enginetest.DefaultTol) || !ft.failed {
				t.Fatal("CheckGrad accepted a wrong gradient")
			}
		})
	}
	// And accepts the right one through the same path.
	ft := &fakeT{TB: t}
	if !enginetest.CheckGrad(ft, ref, []*engine.Tensor{x}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
		return cube(tp, in[0], 1)
	}, enginetest.DefaultTol) || ft.failed {
		t.Fatal("CheckGrad rejected a correct gradient")
	}
}
