package engine_test

import (
	"math"
	"runtime"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// tinyNet is conv -> BN+ReLU -> GAP -> linear -> cross-entropy.
type tinyNet struct {
	w, gamma, beta, fc, fcb *engine.Tensor
	st                      *engine.BNStats
}

func newTinyNet() *tinyNet {
	rng := newRNG(21)
	n := &tinyNet{
		w:     enginetest.Rand(rng, 4, 3, 3, 3),
		gamma: enginetest.Rand(rng, 4),
		beta:  enginetest.Rand(rng, 4),
		fc:    enginetest.Rand(rng, 5, 4),
		fcb:   enginetest.Rand(rng, 5),
		st:    engine.NewBNStats(4),
	}
	return n
}

func (n *tinyNet) params() []*engine.Tensor {
	return []*engine.Tensor{n.w, n.gamma, n.beta, n.fc, n.fcb}
}

func (n *tinyNet) loss(tp *engine.Tape, x *engine.Tensor, labels []int) *engine.Tensor {
	h := tp.Conv2D(x, n.w, nil, engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1})
	h = tp.BatchNorm(h, n.gamma, n.beta, n.st, true, true)
	return tp.CrossEntropy(tp.Linear(tp.GlobalAvgPool(h), n.fc, n.fcb), labels)
}

// sgd takes a plain gradient step and zeroes the gradients.
func sgd(params []*engine.Tensor, lr float32) {
	for _, p := range params {
		d, g := p.Data(), p.Grad().Data()
		for i := range d {
			d[i] -= lr * g[i]
		}
		p.ZeroGrad()
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A steady training loop reuses the same buffers: after the first step the
// pool allocates nothing, and the Go heap does not creep.
func TestPoolSteadyState(t *testing.T) {
	net := newTinyNet()
	rng := newRNG(22)
	x := enginetest.Rand(rng, 2, 3, 5, 5)
	x.SetRequiresGrad(false)
	labels := []int{1, 3}
	tp := engine.NewTape(ref)
	var first, pool100 engine.PoolStats
	var heap100 uint64
	var loss0, loss float32
	for step := 1; step <= 1000; step++ {
		l := net.loss(tp, x, labels)
		loss = l.Item()
		if step == 1 {
			loss0 = loss
		}
		tp.Backward(l)
		sgd(net.params(), 0.05)
		if step == 1 {
			first = tp.PoolStats()
		}
		tp.Reset()
		if step == 100 {
			pool100 = tp.PoolStats()
			heap100 = heapInUse()
		}
	}
	heap1000 := heapInUse()
	final := tp.PoolStats()
	if final.Tensors != first.Tensors || final.Floats != first.Floats || pool100 != final {
		t.Errorf("pool grew: after step 1 %+v, step 100 %+v, step 1000 %+v", first, pool100, final)
	}
	if final.InUse != 0 {
		t.Errorf("%d buffers still in use after Reset", final.InUse)
	}
	t.Logf("pool %+v; heap %d -> %d bytes; loss %.4g -> %.4g", final, heap100, heap1000, loss0, loss)
	const slack = 64 << 10
	if heap1000 > heap100+slack {
		t.Errorf("heap in use grew from %d to %d bytes between steps 100 and 1000", heap100, heap1000)
	}
	// The loop must really train, or the test proves little.
	if !(loss < loss0/4) || math.IsNaN(float64(loss)) {
		t.Errorf("loss went from %g to %g: not training", loss0, loss)
	}
}

// Intermediate gradients go back to the pool during Backward, so a deep
// chain needs far fewer buffers than twice its activations.
func TestBackwardFreesIntermediateGrads(t *testing.T) {
	tp := engine.NewTape(ref)
	x := enginetest.Rand(newRNG(1), 8, 8)
	h := x
	const depth = 50
	for range depth {
		h = tp.Scale(tp.Mul(h, x), 0.5)
	}
	l := tp.Sum(h)
	before := tp.PoolStats().Tensors
	tp.Backward(l)
	added := tp.PoolStats().Tensors - before
	t.Logf("Backward of %d ops added %d buffers", 2*depth, added)
	if added > 10 {
		t.Errorf("Backward through %d ops allocated %d new buffers; intermediate grads are not being reused", 2*depth, added)
	}
	if x.Grad() == nil {
		t.Fatal("no gradient")
	}
}
