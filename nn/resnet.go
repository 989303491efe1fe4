package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/simclr-go/simclr/engine"
)

// ResNetConfig selects and sizes an encoder: a ResNet, or any other
// architecture registered with RegisterArch (NewEncoder builds either).
type ResNetConfig struct {
	Arch string // a registered architecture (ArchNames): "resnet18", "resnet34", "resnet50"
	// Width multiplies every channel count: the stem has max(1, round(64·Width))
	// channels and stage i twice as many as stage i-1 (Width 0.25 gives
	// ResNet-18's 16-32-64-128). Must be in (0, MaxWidth]; see CheckWidth.
	Width float64
	// Stem is "cifar" (3x3/1 conv, no max-pool: for images of ~32 px) or
	// "imagenet" (7x7/2 conv and 3x3/2 max-pool).
	Stem string
	// ZeroInitResidual starts the last BN γ of every block at 0, so that each
	// residual block begins as the identity (Goyal et al. 2017).
	ZeroInitResidual bool
	// InChannels is the number of input channels; 0 means 3.
	InChannels int
	Seed       uint64
}

// archSpec is one member of the ResNet family: blocks per stage and the
// block type.
type archSpec struct {
	blocks     [4]int
	bottleneck bool
	doc        string
}

// archs are the ResNets NewResNet builds; init registers each with the
// architecture registry (RegisterArch). A deeper ResNet is one line here.
var archs = map[string]archSpec{
	"resnet18": {[4]int{2, 2, 2, 2}, false, "ResNet-18: basic blocks 2-2-2-2, h = 512*width"},
	"resnet34": {[4]int{3, 4, 6, 3}, false, "ResNet-34: basic blocks 3-4-6-3, h = 512*width"},
	"resnet50": {[4]int{3, 4, 6, 3}, true, "ResNet-50: bottleneck blocks 3-4-6-3, h = 2048*width"},
}

func init() {
	for name, spec := range archs {
		RegisterArch(Arch{Name: name, Doc: spec.doc, New: func(cfg ResNetConfig) (Encoder, error) { return NewResNet(cfg) }})
	}
}

// ResNet is a torchvision-layout ResNet without its fc layer: Forward returns
// the globally average-pooled representation h.
type ResNet struct {
	cfg    ResNetConfig
	Conv1  *Conv2d
	BN1    *BatchNorm
	Layers [4][]*Block
	outDim int
}

// Block is a basic block (conv1, conv2) or a v1.5 bottleneck (conv1 1x1,
// conv2 3x3 carrying the stride, conv3 1x1 with 4x expansion). DownConv and
// DownBN are nil when the shortcut is the identity.
type Block struct {
	Conv1, Conv2, Conv3 *Conv2d
	BN1, BN2, BN3       *BatchNorm
	DownConv            *Conv2d
	DownBN              *BatchNorm
}

// MaxWidth is the largest width multiplier (ResNet-50 x4 of the paper).
// There is no lower limit other than > 0: BaseChannels never goes below one
// channel, so any positive width builds a working (if tiny) network; below
// 1/128 the stem stays at one channel and smaller widths change nothing.
const MaxWidth = 4

// StemNames lists the stems NewResNet builds.
func StemNames() []string { return []string{"cifar", "imagenet"} }

// CheckWidth: see CheckArch.
func CheckWidth(width float64) error {
	if math.IsNaN(width) || width <= 0 || width > MaxWidth {
		return fmt.Errorf("width %v: want a multiplier in (0, %v]", width, MaxWidth)
	}
	return nil
}

// CheckStem: see CheckArch.
func CheckStem(stem string) error {
	if !slices.Contains(StemNames(), stem) {
		return fmt.Errorf("stem %q: want one of %s", stem, strings.Join(StemNames(), "|"))
	}
	return nil
}

// Validate reports what is wrong with cfg, if anything.
func (cfg ResNetConfig) Validate() error {
	for _, err := range []error{CheckArch(cfg.Arch), CheckWidth(cfg.Width), CheckStem(cfg.Stem)} {
		if err != nil {
			return fmt.Errorf("nn: ResNet %w", err)
		}
	}
	if cfg.InChannels < 0 {
		return fmt.Errorf("nn: ResNet input channels %d: want a positive number (or 0 for 3)", cfg.InChannels)
	}
	return nil
}

// BaseChannels is the stem's channel count for a width multiplier.
func BaseChannels(width float64) int { return max(1, int(math.Round(64*width))) }

// NewResNet builds and initialises an encoder as torchvision does: convs
// kaiming-normal (fan_out, relu), BN γ=1 β=0, running mean 0 and variance 1.
// Weights are a deterministic function of cfg (including Seed).
func NewResNet(cfg ResNetConfig) (*ResNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.InChannels == 0 {
		cfg.InChannels = 3
	}
	spec, ok := archs[cfg.Arch]
	if !ok {
		return nil, fmt.Errorf("nn: arch %q is not a ResNet (NewEncoder builds every registered architecture)", cfg.Arch)
	}
	rng := newRNG(cfg.Seed)
	base := BaseChannels(cfg.Width)
	r := &ResNet{cfg: cfg}
	if cfg.Stem == "cifar" {
		r.Conv1 = newConv2d(rng, "conv1", cfg.InChannels, base, 3, 1, 1)
	} else {
		r.Conv1 = newConv2d(rng, "conv1", cfg.InChannels, base, 7, 2, 3)
	}
	r.BN1 = newBatchNorm("bn1", base, false)
	in := base
	for s := range 4 {
		planes := base << s
		for j := range spec.blocks[s] {
			stride := 1
			if s > 0 && j == 0 {
				stride = 2
			}
			name := fmt.Sprintf("layer%d.%d", s+1, j)
			var b *Block
			if spec.bottleneck {
				b = newBottleneck(rng, name, in, planes, stride)
				in = planes * 4
			} else {
				b = newBasic(rng, name, in, planes, stride)
				in = planes
			}
			if cfg.ZeroInitResidual {
				fill(b.lastBN().Gamma, 0)
			}
			r.Layers[s] = append(r.Layers[s], b)
		}
	}
	r.outDim = in
	return r, nil
}

// torchvision creates a block's modules in the order conv1, bn1, conv2, bn2,
// (conv3, bn3,) downsample; drawing weights in that order keeps the init a
// simple function of the module list.
func newBasic(rng *rand.Rand, name string, in, planes, stride int) *Block {
	b := &Block{
		Conv1: newConv2d(rng, name+".conv1", in, planes, 3, stride, 1),
		BN1:   newBatchNorm(name+".bn1", planes, false),
	}
	b.Conv2 = newConv2d(rng, name+".conv2", planes, planes, 3, 1, 1)
	b.BN2 = newBatchNorm(name+".bn2", planes, false)
	if stride != 1 || in != planes {
		b.DownConv = newConv2d(rng, name+".downsample.0", in, planes, 1, stride, 0)
		b.DownBN = newBatchNorm(name+".downsample.1", planes, false)
	}
	return b
}

func newBottleneck(rng *rand.Rand, name string, in, planes, stride int) *Block {
	out := planes * 4
	b := &Block{
		Conv1: newConv2d(rng, name+".conv1", in, planes, 1, 1, 0),
		BN1:   newBatchNorm(name+".bn1", planes, false),
	}
	b.Conv2 = newConv2d(rng, name+".conv2", planes, planes, 3, stride, 1)
	b.BN2 = newBatchNorm(name+".bn2", planes, false)
	b.Conv3 = newConv2d(rng, name+".conv3", planes, out, 1, 1, 0)
	b.BN3 = newBatchNorm(name+".bn3", out, false)
	if stride != 1 || in != out {
		b.DownConv = newConv2d(rng, name+".downsample.0", in, out, 1, stride, 0)
		b.DownBN = newBatchNorm(name+".downsample.1", out, false)
	}
	return b
}

func (b *Block) lastBN() *BatchNorm {
	if b.BN3 != nil {
		return b.BN3
	}
	return b.BN2
}

// Forward runs the block: the last BN feeds the fused residual add + ReLU.
func (b *Block) Forward(tp *engine.Tape, x *engine.Tensor, train bool) *engine.Tensor {
	// Free releases dead intermediates early: all of them while recording
	// is off (inference); with recording on, only those no backward reads
	// (here the downsample branch's output, once added).
	convBN := func(c *Conv2d, bn *BatchNorm, in *engine.Tensor, relu bool) *engine.Tensor {
		c1 := c.Forward(tp, in)
		out := bn.Forward(tp, c1, train, relu)
		tp.Free(c1)
		return out
	}
	idt := x
	if b.DownConv != nil {
		idt = convBN(b.DownConv, b.DownBN, x, false)
	}
	out := convBN(b.Conv1, b.BN1, x, true)
	if b.Conv3 == nil {
		o2 := convBN(b.Conv2, b.BN2, out, false)
		tp.Free(out)
		out = o2
	} else {
		o2 := convBN(b.Conv2, b.BN2, out, true)
		tp.Free(out)
		out = convBN(b.Conv3, b.BN3, o2, false)
		tp.Free(o2)
	}
	// out (the last BN's output) is used only here: add over its buffer.
	y := tp.AddReLUInPlace(out, idt)
	if idt != x {
		tp.Free(idt)
	}
	return y
}

// modules lists the block's layers in torchvision's state-dict order.
func (b *Block) modules() []Module {
	ms := []Module{b.Conv1, b.BN1, b.Conv2, b.BN2}
	if b.Conv3 != nil {
		ms = append(ms, b.Conv3, b.BN3)
	}
	if b.DownConv != nil {
		ms = append(ms, b.DownConv, b.DownBN)
	}
	return ms
}

// Config returns the configuration the network was built with (InChannels
// filled in).
func (r *ResNet) Config() ResNetConfig { return r.cfg }

// OutDim is the size of h: 512·w for ResNet-18/34, 2048·w for ResNet-50.
func (r *ResNet) OutDim() int { return r.outDim }

// InChannels is the number of input channels Forward expects.
func (r *ResNet) InChannels() int { return r.cfg.InChannels }

// CheckInput returns an error unless shape is [N, InChannels, H, W].
func (r *ResNet) CheckInput(shape []int) error {
	return inputErr("ResNet", shape, 4, r.cfg.InChannels)
}

// Forward maps images x [N,C,H,W] to h [N, OutDim()]. train selects batch
// statistics for every BN (and updates the running ones). It panics if x
// has the wrong shape (see CheckInput).
func (r *ResNet) Forward(tp *engine.Tape, x *engine.Tensor, train bool) *engine.Tensor {
	checkInput("ResNet", x, 4, r.cfg.InChannels)
	c1 := r.Conv1.Forward(tp, x)
	h := r.BN1.Forward(tp, c1, train, true)
	tp.Free(c1) // a no-op unless nothing is recorded (see Block.Forward)
	if r.cfg.Stem == "imagenet" {
		p := tp.MaxPool2D(h, imagenetPool)
		tp.Free(h)
		h = p
	}
	for _, layer := range r.Layers {
		for _, b := range layer {
			nh := b.Forward(tp, h, train)
			tp.Free(h)
			h = nh
		}
	}
	out := tp.GlobalAvgPool(h)
	tp.Free(h)
	return out
}

var imagenetPool = engine.PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}

func (r *ResNet) modules() []Module {
	ms := []Module{r.Conv1, r.BN1}
	for _, layer := range r.Layers {
		for _, b := range layer {
			ms = append(ms, b.modules()...)
		}
	}
	return ms
}

// Params returns the trainable tensors named and ordered as torchvision's
// named_parameters() (fc excluded).
func (r *ResNet) Params() []Param { return collectParams(r.modules()) }

// Buffers returns the BN running statistics named and ordered as
// torchvision's named_buffers(), without num_batches_tracked (see Counters).
func (r *ResNet) Buffers() []Buffer { return collectBuffers(r.modules()) }

// Counters returns the num_batches_tracked counters of every BN, in
// torchvision's order. A PyTorch state dict has one per BN layer.
func (r *ResNet) Counters() []Counter { return collectCounters(r.modules()) }

func collectParams(ms []Module) []Param {
	var ps []Param
	for _, m := range ms {
		ps = append(ps, m.Params()...)
	}
	return ps
}

func collectBuffers(ms []Module) []Buffer {
	var bs []Buffer
	for _, m := range ms {
		bs = append(bs, m.Buffers()...)
	}
	return bs
}

func collectCounters(ms []Module) []Counter {
	var cs []Counter
	for _, m := range ms {
		if bn, ok := m.(*BatchNorm); ok {
			cs = append(cs, bn.counter())
		}
	}
	return cs
}

// FLOPs is the forward cost of one h×w image in floating-point operations,
// counted as 2 × the multiply-adds of every convolution (the same count as
// the PyTorch reference's hooks; BN, ReLU, pooling and adds are left out).
// A training step costs about 3× this per image (forward + backward).
func (r *ResNet) FLOPs(h, w int) int64 {
	var total int64
	conv := func(c *Conv2d, ih, iw int) (int, int) {
		oh, ow := c.outSize(ih), c.outSize(iw)
		total += c.flops(oh, ow)
		return oh, ow
	}
	h, w = conv(r.Conv1, h, w)
	if r.cfg.Stem == "imagenet" {
		p := imagenetPool
		h, w = (h+2*p.PadH-p.KH)/p.StrideH+1, (w+2*p.PadW-p.KW)/p.StrideW+1
	}
	for _, layer := range r.Layers {
		for _, b := range layer {
			if b.DownConv != nil {
				conv(b.DownConv, h, w)
			}
			h1, w1 := conv(b.Conv1, h, w)
			h1, w1 = conv(b.Conv2, h1, w1)
			if b.Conv3 != nil {
				h1, w1 = conv(b.Conv3, h1, w1)
			}
			h, w = h1, w1
		}
	}
	return total
}

// NumParams is the number of trainable scalars.
func NumParams(m Module) int {
	n := 0
	for _, p := range m.Params() {
		n += p.T.Len()
	}
	return n
}
