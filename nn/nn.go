// Package nn holds the networks of SimCLR: the ResNet family (encoder f) and
// the projection heads (g), built on engine's Tape ops. Encoders are
// registered by name (RegisterArch, arch.go), which is all that the config,
// the trainer and exports know of them; docs/extending.md says how to add
// one.
package nn

import "github.com/simclr-go/simclr/engine"

// ParamKind tells optimizers how to treat a parameter.
type ParamKind int

const (
	Weight  ParamKind = iota // conv and linear weights
	Bias                     // linear/conv biases
	BNScale                  // batch-norm gamma
	BNShift                  // batch-norm beta
)

// Param is a named trainable tensor. Names follow torchvision
// ("conv1.weight", "layer1.0.bn1.bias", ...).
type Param struct {
	Name string
	T    *engine.Tensor
	Kind ParamKind
}

// Excluded reports whether SimCLR's LARS leaves this parameter out of weight
// decay and trust-ratio adaptation (batch-norm parameters and biases).
func (p Param) Excluded() bool { return p.Kind != Weight }

// Buffer is named non-trainable state, such as BN running statistics
// ("layer1.0.bn1.running_mean").
type Buffer struct {
	Name string
	T    *engine.Tensor
}

// Module is anything with parameters and buffers.
type Module interface {
	Params() []Param
	Buffers() []Buffer
}

// Net maps a batch to an output on a tape. train selects batch-norm's
// training mode (batch statistics, running-average updates). Any Net can be
// a Model's encoder: checkpoints, exports and evaluation see it only
// through this interface.
type Net interface {
	Module
	Forward(tp *engine.Tape, x *engine.Tensor, train bool) *engine.Tensor
	OutDim() int
	// Counters is the net's integer state (BN num_batches_tracked), saved
	// with its parameters and buffers; nil when it has none.
	Counters() []Counter
}

// Coster is a Net that counts its forward cost for an h×w input, in
// floating-point operations (2 × the multiply-adds of convolutions and
// linear layers); `simclr bench` reports GFLOP/s from it.
type Coster interface {
	FLOPs(h, w int) int64
}
