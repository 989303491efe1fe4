package enginetest_test

import (
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// The Reference backend passes the conformance suite, whose oracles are
// independent of its kernels.
func TestReferenceConforms(t *testing.T) { enginetest.CheckBackend(t, engine.Reference()) }

// broken is the Reference with one kernel's result spoilt by spoil.
type broken struct {
	engine.Backend
	kernel string
	scale  float32 // multiply the whole result by this; 0: change one element
}

// spoil changes one element of t by 1e-3 (relative), a mistake the kernel
// checks must catch even in a big tensor, or scales all of t.
func (b broken) spoil(kernel string, t *engine.Tensor) {
	if kernel != b.kernel {
		return
	}
	d := t.Data()
	if b.scale != 0 {
		for i := range d {
			d[i] *= b.scale
		}
		return
	}
	d[len(d)/2] += 1e-3 * max(1, abs(d[len(d)/2]))
}

func abs(v float32) float32 { return max(v, -v) }

func (b broken) Conv2D(y, x, w, bias *engine.Tensor, p engine.ConvParams) {
	b.Backend.Conv2D(y, x, w, bias, p)
	b.spoil("Conv2D", y)
}
func (b broken) Conv2DBackwardData(dx, dy, w *engine.Tensor, p engine.ConvParams) {
	b.Backend.Conv2DBackwardData(dx, dy, w, p)
	b.spoil("Conv2DBackwardData", dx)
}
func (b broken) Conv2DBackwardWeights(dw, db, x, dy *engine.Tensor, p engine.ConvParams) {
	b.Backend.Conv2DBackwardWeights(dw, db, x, dy, p)
	b.spoil("Conv2DBackwardWeights", dw)
}
func (b broken) BatchNorm(y, x, gamma, beta, mean, variance *engine.Tensor, p engine.BNParams) engine.Workspace {
	ws := b.Backend.BatchNorm(y, x, gamma, beta, mean, variance, p)
	b.spoil("BatchNorm", y)
	return ws
}
func (b broken) BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, variance *engine.Tensor, ws engine.Workspace, p engine.BNParams) {
	b.Backend.BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, variance, ws, p)
	b.spoil("BatchNormBackward", dx)
}
func (b broken) ReLU(y, x *engine.Tensor) {
	b.Backend.ReLU(y, x)
	b.spoil("ReLU", y)
}
func (b broken) Add(y, x, z *engine.Tensor, relu bool) {
	b.Backend.Add(y, x, z, relu)
	b.spoil("Add", y)
}
func (b broken) MaxPool2D(y, x *engine.Tensor, p engine.PoolParams) engine.Workspace {
	ws := b.Backend.MaxPool2D(y, x, p)
	b.spoil("MaxPool2D", y)
	return ws
}
func (b broken) GlobalAvgPoolBackward(dx, dy *engine.Tensor) {
	b.Backend.GlobalAvgPoolBackward(dx, dy)
	b.spoil("GlobalAvgPoolBackward", dx)
}
func (b broken) MatMul(c, x, y *engine.Tensor, ta, tb bool, alpha, beta float32) {
	b.Backend.MatMul(c, x, y, ta, tb, alpha, beta)
	b.spoil("MatMul", c)
}

// Each check must reject a backend whose kernel is slightly wrong.
func TestChecksRejectBrokenKernels(t *testing.T) {
	for _, tc := range []struct {
		kernel string
		check  func(testing.TB, engine.Backend)
	}{
		{"Conv2D", func(t testing.TB, b engine.Backend) { enginetest.CheckConv(t, b, 1e-4) }},
		{"Conv2DBackwardData", func(t testing.TB, b engine.Backend) { enginetest.CheckConv(t, b, 1e-4) }},
		{"Conv2DBackwardWeights", func(t testing.TB, b engine.Backend) { enginetest.CheckConv(t, b, 1e-4) }},
		{"BatchNorm", func(t testing.TB, b engine.Backend) { enginetest.CheckBatchNorm(t, b, 1e-4) }},
		{"BatchNormBackward", func(t testing.TB, b engine.Backend) { enginetest.CheckBatchNorm(t, b, 1e-4) }},
		{"ReLU", enginetest.CheckElementwise},
		{"Add", enginetest.CheckElementwise},
		{"MaxPool2D", func(t testing.TB, b engine.Backend) { enginetest.CheckPooling(t, b, 1e-4) }},
		{"GlobalAvgPoolBackward", func(t testing.TB, b engine.Backend) { enginetest.CheckPooling(t, b, 1e-4) }},
		{"MatMul", func(t testing.TB, b engine.Backend) { enginetest.CheckMatMul(t, b, 1e-4) }},
	} {
		t.Run(tc.kernel, func(t *testing.T) {
			ft := &fakeT{TB: t}
			tc.check(ft, broken{engine.Reference(), tc.kernel, 0})
			if !ft.failed {
				t.Errorf("the check accepted a spoilt %s", tc.kernel)
			}
		})
	}
	// The tape check catches a backward kernel off by 5% (its finite
	// differences are too coarse for the one-element mistakes above).
	ft := &fakeT{TB: t}
	enginetest.CheckTape(ft, broken{engine.Reference(), "Conv2DBackwardWeights", 1.05})
	if !ft.failed {
		t.Error("CheckTape accepted a spoilt Conv2DBackwardWeights")
	}
}
