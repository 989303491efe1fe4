package engine_test

import (
	"math"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// blockedBackend behaves like a backend with a private layout (as oneDNN's
// nChw16c or nChw8c): it runs the reference kernels but leaves every 4-D
// result whose C is a multiple of B in blocked order, and accepts any layout as input.
// The tape must give the same values and gradients as with Reference.
type blockedBackend struct {
	r      engine.Backend
	B      int // block size: 16 or 8
	layout engine.Layout
}

func (b blockedBackend) Name() string      { return "blocked-test" }
func (b blockedBackend) Caps() engine.Caps { return engine.Caps{} }

func (b blockedBackend) in(t *engine.Tensor) *engine.Tensor {
	if t == nil || t.Layout() == engine.Plain {
		return t
	}
	p := engine.New(t.Shape()...)
	b.r.ToPlain(p, t)
	return p
}

// out reorders a Plain result to Blocked16 in place when it qualifies.
func (b blockedBackend) out(t *engine.Tensor) {
	s := t.Shape()
	if len(s) != 4 || s[1]%b.B != 0 {
		return
	}
	B := b.B
	N, C, S := s[0], s[1], s[2]*s[3]
	src := append([]float32(nil), t.Raw()...)
	dst := t.Raw()
	for n := range N {
		for c := range C {
			for i := range S {
				dst[((n*C/B+c/B)*S+i)*B+c%B] = src[(n*C+c)*S+i]
			}
		}
	}
	t.SetLayout(b.layout)
}

func (b blockedBackend) Conv2D(y, x, w, bias *engine.Tensor, p engine.ConvParams) {
	b.r.Conv2D(y, b.in(x), w, bias, p)
	b.out(y)
}
func (b blockedBackend) Conv2DBackwardData(dx, dy, w *engine.Tensor, p engine.ConvParams) {
	b.r.Conv2DBackwardData(dx, b.in(dy), w, p)
	b.out(dx)
}
func (b blockedBackend) Conv2DBackwardWeights(dw, db, x, dy *engine.Tensor, p engine.ConvParams) {
	b.r.Conv2DBackwardWeights(dw, db, b.in(x), b.in(dy), p)
}
func (b blockedBackend) BatchNorm(y, x, gamma, beta, mean, variance *engine.Tensor, p engine.BNParams) engine.Workspace {
	ws := b.r.BatchNorm(y, b.in(x), gamma, beta, mean, variance, p)
	b.out(y)
	return ws
}
func (b blockedBackend) BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, variance *engine.Tensor, ws engine.Workspace, p engine.BNParams) {
	b.r.BatchNormBackward(dx, dgamma, dbeta, b.in(dy), b.in(x), b.in(y), gamma, mean, variance, ws, p)
	b.out(dx)
}
func (b blockedBackend) ReLU(y, x *engine.Tensor) { b.r.ReLU(y, b.in(x)); b.out(y) }
func (b blockedBackend) ReLUBackward(dx, dy, y *engine.Tensor) {
	b.r.ReLUBackward(dx, b.in(dy), b.in(y))
	b.out(dx)
}
func (b blockedBackend) Add(y, a, c *engine.Tensor, relu bool) {
	b.r.Add(y, b.in(a), b.in(c), relu)
	b.out(y)
}
func (b blockedBackend) MaxPool2D(y, x *engine.Tensor, p engine.PoolParams) engine.Workspace {
	ws := b.r.MaxPool2D(y, b.in(x), p)
	b.out(y)
	return ws
}
func (b blockedBackend) MaxPool2DBackward(dx, dy *engine.Tensor, ws engine.Workspace, p engine.PoolParams) {
	b.r.MaxPool2DBackward(dx, b.in(dy), ws, p)
	b.out(dx)
}
func (b blockedBackend) GlobalAvgPool(y, x *engine.Tensor) { b.r.GlobalAvgPool(y, b.in(x)) }
func (b blockedBackend) GlobalAvgPoolBackward(dx, dy *engine.Tensor) {
	b.r.GlobalAvgPoolBackward(dx, dy)
	b.out(dx)
}
func (b blockedBackend) MatMul(c, a, bb *engine.Tensor, ta, tb bool, alpha, beta float32) {
	b.r.MatMul(c, a, bb, ta, tb, alpha, beta)
}
func (b blockedBackend) ToPlain(dst, src *engine.Tensor) { b.r.ToPlain(dst, src) }

// mixedNet runs every layout-sensitive tape op on blocked tensors, mixing
// them with Plain ones.
func mixedNet(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
	x, w, gamma, beta := in[0], in[1], in[2], in[3]
	h := tp.Conv2D(x, w, nil, engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1})
	h = tp.BatchNorm(h, gamma, beta, nil, true, true)
	flat := tp.Reshape(h, 2, -1)                  // blocked -> Plain view
	parts := tp.Split(h, 1, 1)                    // stays blocked
	swapped := tp.Concat(parts[1], parts[0])      // blocked + blocked
	m := tp.Mul(swapped, h)                       // blocked * blocked
	mixed := tp.Mul(h, x)                         // blocked * Plain
	s := tp.Add(m, tp.Reshape(flat, 2, 16, 3, 3)) // blocked + Plain, in the backend
	pool := tp.MaxPool2D(tp.Scale(s, 0.5), engine.PoolParams{KH: 2, KW: 2, StrideH: 1, StrideW: 1})
	all := tp.Concat(s, mixed, tp.Plain(h))
	return tp.Concat(
		tp.Reshape(all, -1, 1),
		tp.Reshape(tp.GlobalAvgPool(pool), -1, 1),
		tp.Reshape(tp.Mean(m), 1, 1),
		tp.Reshape(tp.Sum(tp.Conv2D(h, w, nil, engine.ConvParams{StrideH: 2, StrideW: 2})), 1, 1),
	)
}

func TestBlockedLayouts(t *testing.T) {
	t.Run("Blocked16", func(t *testing.T) { testBlocked(t, blockedBackend{r: ref, B: 16, layout: engine.Blocked16}) })
	t.Run("Blocked8", func(t *testing.T) { testBlocked(t, blockedBackend{r: ref, B: 8, layout: engine.Blocked8}) })
}

// The stand-in passes the backend conformance suite, which so exercises its
// checks of blocked inputs without oneDNN.
func TestBlockedBackendConforms(t *testing.T) {
	t.Run("Blocked16", func(t *testing.T) {
		enginetest.CheckBackend(t, blockedBackend{r: ref, B: 16, layout: engine.Blocked16})
	})
	t.Run("Blocked8", func(t *testing.T) {
		enginetest.CheckBackend(t, blockedBackend{r: ref, B: 8, layout: engine.Blocked8})
	})
}

func testBlocked(t *testing.T, bb blockedBackend) {
	mk := func() []*engine.Tensor {
		r := newRNG(31)
		x := enginetest.Rand(r, 2, 16, 3, 3)
		w := enginetest.Rand(r, 16, 16, 3, 3)
		for i := range w.Data() {
			w.Data()[i] *= 0.2
		}
		// Small gamma, beta away from 0: the fused ReLU stays off its kink.
		gamma := enginetest.Rand(r, 16)
		beta := awayFromZero(enginetest.Rand(r, 16), 0.2)
		for i := range gamma.Data() {
			gamma.Data()[i] *= 0.1
			beta.Data()[i] = abs32(beta.Data()[i]) + 0.3
		}
		return []*engine.Tensor{x, w, gamma, beta}
	}
	if y := engine.NewTape(bb).Conv2D(mk()[0], mk()[1], nil, engine.ConvParams{StrideH: 1, StrideW: 1}); y.Layout() != bb.layout {
		t.Fatal("test backend does not produce blocked tensors")
	}

	// Same forward values as the reference.
	want := engine.NewTape(ref)
	got := engine.NewTape(bb)
	in := mk()
	yw := want.Plain(mixedNet(want, in)).Data()
	yg := got.Plain(mixedNet(got, in)).Data()
	if len(yw) != len(yg) {
		t.Fatalf("%d vs %d outputs", len(yg), len(yw))
	}
	for i := range yw {
		if math.Abs(float64(yw[i]-yg[i])) > 1e-5*(1+math.Abs(float64(yw[i]))) {
			t.Fatalf("output %d: blocked %g, reference %g", i, yg[i], yw[i])
		}
	}

	// Gradients: finite differences with the blocked backend, and equal to
	// the reference backend's. A smaller step keeps max-pool near-ties from
	// flipping.
	old := enginetest.Step
	enginetest.Step = 1e-3
	defer func() { enginetest.Step = old }()
	inB := mk()
	enginetest.CheckGrad(t, bb, inB, mixedNet, enginetest.DefaultTol)
	inR := mk()
	enginetest.CheckGrad(t, ref, inR, mixedNet, enginetest.DefaultTol)
	for k := range inB {
		gb, gr := inB[k].Grad().Data(), inR[k].Grad().Data()
		for i := range gb {
			if math.Abs(float64(gb[i]-gr[i])) > 1e-4*(1+math.Abs(float64(gr[i]))) {
				t.Fatalf("input %d grad %d: blocked %g, reference %g", k, i, gb[i], gr[i])
			}
		}
	}
}

func abs32(v float32) float32 { return float32(math.Abs(float64(v))) }
