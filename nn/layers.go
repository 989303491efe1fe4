package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/simclr-go/simclr/engine"
)

// PyTorch's batch-norm defaults, used by every BN layer here.
const (
	BNEps      = 1e-5
	BNMomentum = 0.1
)

// newRNG returns the generator every initialiser in this package draws from.
// The second PCG word is a fixed stream constant so that seed 0 is usable.
func newRNG(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x5eed_c1a5_51f1_ed00))
}

// Conv2d is a square-kernel convolution without bias (ResNets never use one:
// a batch norm always follows).
type Conv2d struct {
	Name                    string // module path, e.g. "layer1.0.conv1"
	In, Out, K, Stride, Pad int
	W                       *engine.Tensor // [Out, In, K, K]
}

// newConv2d initialises like torchvision's ResNet:
// kaiming_normal_(mode='fan_out', nonlinearity='relu'), i.e.
// N(0, 2/(Out·K·K)).
func newConv2d(rng *rand.Rand, name string, in, out, k, stride, pad int) *Conv2d {
	w := engine.New(out, in, k, k)
	std := math.Sqrt(2 / float64(out*k*k))
	d := w.Data()
	for i := range d {
		d[i] = float32(rng.NormFloat64() * std)
	}
	w.SetRequiresGrad(true)
	return &Conv2d{Name: name, In: in, Out: out, K: k, Stride: stride, Pad: pad, W: w}
}

func (c *Conv2d) params() engine.ConvParams {
	return engine.ConvParams{StrideH: c.Stride, StrideW: c.Stride, PadH: c.Pad, PadW: c.Pad}
}

// Forward convolves x [N,In,H,W].
func (c *Conv2d) Forward(tp *engine.Tape, x *engine.Tensor) *engine.Tensor {
	return tp.Conv2D(x, c.W, nil, c.params())
}

// outSize is the spatial output size for an input side of n.
func (c *Conv2d) outSize(n int) int { return (n+2*c.Pad-c.K)/c.Stride + 1 }

// flops counts 2·multiply-adds for one image whose output is oh×ow.
func (c *Conv2d) flops(oh, ow int) int64 {
	return 2 * int64(c.Out) * int64(oh) * int64(ow) * int64(c.In) * int64(c.K) * int64(c.K)
}

// Params returns the weight as "<name>.weight".
func (c *Conv2d) Params() []Param {
	return []Param{{Name: c.Name + ".weight", T: c.W, Kind: Weight}}
}

// Buffers returns nothing: a convolution has no state.
func (c *Conv2d) Buffers() []Buffer { return nil }

// BatchNorm normalises [N,C] or [N,C,H,W] per channel with PyTorch's
// semantics (eps 1e-5, momentum 0.1, unbiased running variance).
type BatchNorm struct {
	Name  string
	C     int
	Gamma *engine.Tensor // [C], trainable ("<name>.weight")
	// Beta is [C]. It is trainable ("<name>.bias") unless FixedBeta is set,
	// in which case it stays zero and is exported as a buffer of the same
	// name, so that the state dict still loads into PyTorch's
	// BatchNorm1d(affine=True) (SimCLR v2's last head layer has no centre).
	Beta      *engine.Tensor
	FixedBeta bool
	Stats     engine.BNStats
	// Tracked counts training-mode forwards, like PyTorch's
	// num_batches_tracked (which the state dict carries as an int64).
	Tracked int64
}

func newBatchNorm(name string, c int, fixedBeta bool) *BatchNorm {
	gamma, beta := engine.New(c), engine.New(c)
	fill(gamma, 1)
	gamma.SetRequiresGrad(true)
	beta.SetRequiresGrad(!fixedBeta)
	rv := engine.New(c)
	fill(rv, 1)
	return &BatchNorm{
		Name: name, C: c, Gamma: gamma, Beta: beta, FixedBeta: fixedBeta,
		Stats: engine.BNStats{Mean: engine.New(c), Var: rv, Momentum: BNMomentum, Eps: BNEps},
	}
}

func fill(t *engine.Tensor, v float32) {
	d := t.Data()
	for i := range d {
		d[i] = v
	}
}

// Forward normalises x; train selects batch statistics (and updates the
// running ones), relu fuses a ReLU.
func (b *BatchNorm) Forward(tp *engine.Tape, x *engine.Tensor, train, relu bool) *engine.Tensor {
	if train {
		b.Tracked++
	}
	return tp.BatchNorm(x, b.Gamma, b.Beta, &b.Stats, train, relu)
}

// Params returns gamma (BNScale) and, unless fixed, beta (BNShift).
func (b *BatchNorm) Params() []Param {
	ps := []Param{{Name: b.Name + ".weight", T: b.Gamma, Kind: BNScale}}
	if !b.FixedBeta {
		ps = append(ps, Param{Name: b.Name + ".bias", T: b.Beta, Kind: BNShift})
	}
	return ps
}

// Buffers returns the running statistics (and the fixed beta, if any).
func (b *BatchNorm) Buffers() []Buffer {
	var bs []Buffer
	if b.FixedBeta {
		bs = append(bs, Buffer{Name: b.Name + ".bias", T: b.Beta})
	}
	return append(bs,
		Buffer{Name: b.Name + ".running_mean", T: b.Stats.Mean},
		Buffer{Name: b.Name + ".running_var", T: b.Stats.Var})
}

// Counter is an integer buffer: PyTorch's BN num_batches_tracked. It is kept
// apart from Buffers because it is not a float tensor; an exporter that
// wants a complete PyTorch state dict writes these as int64 scalars.
type Counter struct {
	Name string
	N    *int64
}

func (b *BatchNorm) counter() Counter {
	return Counter{Name: b.Name + ".num_batches_tracked", N: &b.Tracked}
}

// Linear is y = x·Wᵀ + b with W [Out, In] (PyTorch's layout).
type Linear struct {
	Name    string
	In, Out int
	W       *engine.Tensor // [Out, In]
	B       *engine.Tensor // [Out] or nil
}

// newLinear initialises as PyTorch's nn.Linear does: kaiming_uniform_ with
// a=√5, which is U(-1/√In, 1/√In), and the bias from the same range.
func newLinear(rng *rand.Rand, name string, in, out int, bias bool) *Linear {
	bound := 1 / math.Sqrt(float64(in))
	uni := func(t *engine.Tensor) {
		d := t.Data()
		for i := range d {
			d[i] = float32((2*rng.Float64() - 1) * bound)
		}
		t.SetRequiresGrad(true)
	}
	l := &Linear{Name: name, In: in, Out: out, W: engine.New(out, in)}
	uni(l.W)
	if bias {
		l.B = engine.New(out)
		uni(l.B)
	}
	return l
}

// Forward maps x [N,In] to [N,Out].
func (l *Linear) Forward(tp *engine.Tape, x *engine.Tensor) *engine.Tensor {
	return tp.Linear(x, l.W, l.B)
}

// Params returns the weight and, if present, the bias.
func (l *Linear) Params() []Param {
	ps := []Param{{Name: l.Name + ".weight", T: l.W, Kind: Weight}}
	if l.B != nil {
		ps = append(ps, Param{Name: l.Name + ".bias", T: l.B, Kind: Bias})
	}
	return ps
}

// Buffers returns nothing.
func (l *Linear) Buffers() []Buffer { return nil }

func (l *Linear) flops() int64 { return 2 * int64(l.In) * int64(l.Out) }

// checkInput panics with a clear message when x is not [N, c, ...] with the
// given rank; model code calls it before touching the tape so that the error
// names the model rather than an inner op.
func checkInput(who string, x *engine.Tensor, rank, c int) {
	if err := inputErr(who, x.Shape(), rank, c); err != nil {
		panic(err.Error())
	}
}

func inputErr(who string, shape []int, rank, c int) error {
	if len(shape) != rank {
		return fmt.Errorf("nn: %s: input shape %v: want %d dimensions", who, shape, rank)
	}
	if shape[1] != c {
		return fmt.Errorf("nn: %s: input shape %v: want %d channels/features in dimension 1, got %d", who, shape, c, shape[1])
	}
	return nil
}
