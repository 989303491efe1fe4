package nn

import (
	"fmt"
	"slices"
	"strings"

	"github.com/simclr-go/simclr/engine"
)

// HeadConfig selects a projection head g.
type HeadConfig struct {
	// Version "v1" is SimCLR v1's head as in the reference script:
	// Linear(In,Hidden)+bias → BN → ReLU → Linear(Hidden,Out)+bias
	// (PyTorch nn.Sequential indices head.0, head.1, head.3).
	//
	// Version "v2" is google-research/simclr's 3-layer head
	// (num_proj_layers=3): every layer is a bias-free Linear followed by BN;
	// the first two are followed by ReLU, and the last BN has no β (centre
	// off), which is kept as a zero buffer "head.7.bias" so the state dict
	// still loads into nn.BatchNorm1d. Indices head.0/1, head.3/4, head.6/7.
	//
	// All linears are initialised like PyTorch's nn.Linear (the TF code uses
	// N(0, 0.01²); BN makes the difference immaterial).
	Version string
	In      int // size of h
	Hidden  int // 0 means In (as in both papers)
	Out     int // 0 means 128
	Seed    uint64
}

// Head is a projection MLP mapping h [N,In] to z [N,Out].
type Head struct {
	cfg     HeadConfig
	Linears []*Linear
	BNs     []*BatchNorm // BNs[i] follows Linears[i]; nil where there is none
}

// HeadVersions lists the head versions NewHead builds.
func HeadVersions() []string { return []string{"v1", "v2"} }

// CheckHeadVersion validates HeadConfig.Version (the only copy of the
// allowed names; train.Config.Validate calls it too).
func CheckHeadVersion(v string) error {
	if !slices.Contains(HeadVersions(), v) {
		return fmt.Errorf("head version %q: want one of %s", v, strings.Join(HeadVersions(), "|"))
	}
	return nil
}

// NewHead builds a projection head; weights are a deterministic function of
// cfg.
func NewHead(cfg HeadConfig) (*Head, error) {
	if err := CheckHeadVersion(cfg.Version); err != nil {
		return nil, fmt.Errorf("nn: %w", err)
	}
	if cfg.Hidden == 0 {
		cfg.Hidden = cfg.In
	}
	if cfg.Out == 0 {
		cfg.Out = 128
	}
	if cfg.In <= 0 || cfg.Hidden <= 0 || cfg.Out <= 0 {
		return nil, fmt.Errorf("nn: head sizes in=%d hidden=%d out=%d: want positive sizes", cfg.In, cfg.Hidden, cfg.Out)
	}
	rng := newRNG(cfg.Seed)
	h := &Head{cfg: cfg}
	switch cfg.Version {
	case "v1":
		h.Linears = []*Linear{
			newLinear(rng, "head.0", cfg.In, cfg.Hidden, true),
			newLinear(rng, "head.3", cfg.Hidden, cfg.Out, true),
		}
		h.BNs = []*BatchNorm{newBatchNorm("head.1", cfg.Hidden, false), nil}
	case "v2":
		h.Linears = []*Linear{
			newLinear(rng, "head.0", cfg.In, cfg.Hidden, false),
			newLinear(rng, "head.3", cfg.Hidden, cfg.Hidden, false),
			newLinear(rng, "head.6", cfg.Hidden, cfg.Out, false),
		}
		h.BNs = []*BatchNorm{
			newBatchNorm("head.1", cfg.Hidden, false),
			newBatchNorm("head.4", cfg.Hidden, false),
			newBatchNorm("head.7", cfg.Out, true),
		}
	}
	return h, nil
}

// Config returns the configuration with defaults filled in.
func (h *Head) Config() HeadConfig { return h.cfg }

// OutDim is the size of z.
func (h *Head) OutDim() int { return h.cfg.Out }

// Forward maps h [N,In] to z [N,Out]. Every layer but the last ends in ReLU.
func (h *Head) Forward(tp *engine.Tape, x *engine.Tensor, train bool) *engine.Tensor {
	checkInput("Head", x, 2, h.cfg.In)
	last := len(h.Linears) - 1
	for i, l := range h.Linears {
		x = l.Forward(tp, x)
		relu := i < last
		if bn := h.BNs[i]; bn != nil {
			x = bn.Forward(tp, x, train, relu)
		} else if relu {
			x = tp.ReLU(x)
		}
	}
	return x
}

func (h *Head) modules() []Module {
	var ms []Module
	for i, l := range h.Linears {
		ms = append(ms, l)
		if h.BNs[i] != nil {
			ms = append(ms, h.BNs[i])
		}
	}
	return ms
}

// Params returns the head's parameters, named "head.<index>.<weight|bias>".
func (h *Head) Params() []Param { return collectParams(h.modules()) }

// Buffers returns the BN running statistics (and v2's fixed zero β).
func (h *Head) Buffers() []Buffer { return collectBuffers(h.modules()) }

// Counters returns the BN num_batches_tracked counters.
func (h *Head) Counters() []Counter { return collectCounters(h.modules()) }

// FLOPs is the forward cost per sample (2 × multiply-adds of the linears).
func (h *Head) FLOPs() int64 {
	var n int64
	for _, l := range h.Linears {
		n += l.flops()
	}
	return n
}
