package nn

import (
	"fmt"

	"github.com/simclr-go/simclr/engine"
)

// Model is SimCLR's network: encoder f (h = f(x)) and projection head g
// (z = g(h)). The loss is computed on z; downstream tasks use h.
type Model struct {
	Encoder Net
	Head    *Head
}

// NewModel builds the encoder of a registered architecture (NewEncoder)
// and a head whose input size is the encoder's OutDim (hcfg.In is ignored).
func NewModel(rcfg ResNetConfig, hcfg HeadConfig) (*Model, error) {
	enc, err := NewEncoder(rcfg)
	if err != nil {
		return nil, err
	}
	return NewModelOf(enc, hcfg)
}

// NewModelOf puts a head on any encoder.
func NewModelOf(enc Net, hcfg HeadConfig) (*Model, error) {
	hcfg.In = enc.OutDim()
	head, err := NewHead(hcfg)
	if err != nil {
		return nil, fmt.Errorf("nn: model: %w", err)
	}
	return &Model{Encoder: enc, Head: head}, nil
}

// Forward returns z = g(f(x)) [N, Head.OutDim()].
func (m *Model) Forward(tp *engine.Tape, x *engine.Tensor, train bool) *engine.Tensor {
	_, z := m.ForwardHZ(tp, x, train)
	return z
}

// ForwardHZ returns both the representation h and the projection z.
func (m *Model) ForwardHZ(tp *engine.Tape, x *engine.Tensor, train bool) (h, z *engine.Tensor) {
	h = m.Encoder.Forward(tp, x, train)
	return h, m.Head.Forward(tp, h, train)
}

// OutDim is the size of z.
func (m *Model) OutDim() int { return m.Head.OutDim() }

// EncoderPrefix is the checkpoint name prefix of the encoder's tensors: a
// checkpoint is the state_dict of a PyTorch module with .encoder and .head
// attributes (as in the reference simclr_ref.py).
const EncoderPrefix = "encoder."

// NamedParams returns Params named as in a checkpoint: the encoder's under
// EncoderPrefix, then the head's ("head.0.weight", ...).
func (m *Model) NamedParams() []Param {
	var ps []Param
	for _, p := range m.Encoder.Params() {
		p.Name = EncoderPrefix + p.Name
		ps = append(ps, p)
	}
	return append(ps, m.Head.Params()...)
}

// Params returns the encoder's parameters (torchvision names) followed by
// the head's ("head.0.weight", ...).
func (m *Model) Params() []Param { return append(m.Encoder.Params(), m.Head.Params()...) }

// Buffers returns the encoder's buffers followed by the head's.
func (m *Model) Buffers() []Buffer { return append(m.Encoder.Buffers(), m.Head.Buffers()...) }

// Counters returns every BN's num_batches_tracked, encoder first.
func (m *Model) Counters() []Counter { return append(m.Encoder.Counters(), m.Head.Counters()...) }

// FLOPs is the forward cost of one h×w image through encoder and head
// (2 × multiply-adds of convs and linears, as the PyTorch reference counts);
// 0 when the encoder is not a Coster.
func (m *Model) FLOPs(h, w int) int64 {
	c, ok := m.Encoder.(Coster)
	if !ok {
		return 0
	}
	return c.FLOPs(h, w) + m.Head.FLOPs()
}
