package engine_test

import (
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// nopBackend does no arithmetic, so benchmarks on it measure the tape alone.
type nopBackend struct{}

func (nopBackend) Name() string                                                     { return "nop" }
func (nopBackend) Caps() engine.Caps                                                { return engine.Caps{} }
func (nopBackend) Conv2D(y, x, w, b *engine.Tensor, p engine.ConvParams)            {}
func (nopBackend) Conv2DBackwardData(dx, dy, w *engine.Tensor, p engine.ConvParams) {}
func (nopBackend) Conv2DBackwardWeights(dw, db, x, dy *engine.Tensor, p engine.ConvParams) {
}
func (nopBackend) BatchNorm(y, x, gamma, beta, mean, variance *engine.Tensor, p engine.BNParams) engine.Workspace {
	return nil
}
func (nopBackend) BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, variance *engine.Tensor, ws engine.Workspace, p engine.BNParams) {
}
func (nopBackend) ReLU(y, x *engine.Tensor)                                            {}
func (nopBackend) ReLUBackward(dx, dy, y *engine.Tensor)                               {}
func (nopBackend) Add(y, a, b *engine.Tensor, relu bool)                               {}
func (nopBackend) MaxPool2D(y, x *engine.Tensor, p engine.PoolParams) engine.Workspace { return nil }
func (nopBackend) MaxPool2DBackward(dx, dy *engine.Tensor, ws engine.Workspace, p engine.PoolParams) {
}
func (nopBackend) GlobalAvgPool(y, x *engine.Tensor)                               {}
func (nopBackend) GlobalAvgPoolBackward(dx, dy *engine.Tensor)                     {}
func (nopBackend) MatMul(c, a, b *engine.Tensor, ta, tb bool, alpha, beta float32) {}
func (nopBackend) ToPlain(dst, src *engine.Tensor)                                 {}

// residualStep is one forward/backward of a stack of ResNet basic blocks
// (conv-BN-ReLU-conv-BN-add-ReLU), tiny shapes.
func residualStep(tp *engine.Tape, x *engine.Tensor, ws, gs, bs []*engine.Tensor, sts []*engine.BNStats) {
	p := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	h := x
	for i := 0; i < len(ws); i += 2 {
		a := tp.BatchNorm(tp.Conv2D(h, ws[i], nil, p), gs[i], bs[i], sts[i], true, true)
		a = tp.BatchNorm(tp.Conv2D(a, ws[i+1], nil, p), gs[i+1], bs[i+1], sts[i+1], true, false)
		h = tp.AddReLU(a, h)
	}
	tp.Backward(tp.Mean(tp.GlobalAvgPool(h)))
	tp.Reset()
}

// BenchmarkTapeOverhead reports the tape's own cost per recorded op
// (forward + backward + reset) with kernels that do nothing.
func BenchmarkTapeOverhead(b *testing.B) {
	const blocks = 8 // ResNet-18 has 8 basic blocks
	rng := newRNG(1)
	x := enginetest.Rand(rng, 2, 16, 4, 4)
	var ws, gs, bs []*engine.Tensor
	var sts []*engine.BNStats
	for range 2 * blocks {
		ws = append(ws, enginetest.Rand(rng, 16, 16, 3, 3))
		gs = append(gs, enginetest.Rand(rng, 16))
		bs = append(bs, enginetest.Rand(rng, 16))
		sts = append(sts, engine.NewBNStats(16))
	}
	tp := engine.NewTape(nopBackend{})
	opsPerStep := 5*blocks + 2
	b.ReportAllocs()
	for b.Loop() {
		residualStep(tp, x, ws, gs, bs, sts)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*opsPerStep), "ns/tape-op")
}

func BenchmarkReferenceConv3x3(b *testing.B) {
	rng := newRNG(2)
	x := enginetest.Rand(rng, 8, 32, 16, 16)
	w := enginetest.Rand(rng, 32, 32, 3, 3)
	tp := engine.NewTape(ref)
	p := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	for b.Loop() {
		tp.Backward(tp.Sum(tp.Conv2D(x, w, nil, p)))
		tp.Reset()
	}
	flops := 3 * 2 * 8 * 32 * 16 * 16 * 32 * 9.0
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
