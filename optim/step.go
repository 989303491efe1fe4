package optim

import (
	"errors"
	"fmt"
	"math"

	"github.com/simclr-go/simclr/engine"
)

// ErrNonFinite is wrapped by the error of a Step whose loss is NaN or
// infinite.
var ErrNonFinite = errors.New("non-finite loss")

// Step is the one training step of every loop: pretraining (train), the
// supervised fine-tuning and linear evaluation (eval) and `simclr bench`.
// It lives here, below train and eval, because eval cannot import train
// (train's kNN monitor imports eval): the step needs only a tape and an
// optimizer, which this package already sees.
type Step struct {
	Tape *engine.Tape
	Opt  Optimizer
	// AfterBackward, when set, runs between the backward pass and the
	// update, with the gradients in place (a data-parallel job sums them
	// over its processes there). An error ends the step before the update.
	AfterBackward func() error
}

// Run takes one step with learning rate lr: it clears the tape, records the
// loss with forward, and unless forward fails or the loss is NaN or
// infinite (an error wrapping ErrNonFinite; the weights are left as they
// were), zeroes the gradients, backpropagates the loss and updates the
// parameters. It returns the loss value.
func (s *Step) Run(lr float32, forward func(tp *engine.Tape) (*engine.Tensor, error)) (float32, error) {
	s.Tape.Reset()
	l, err := forward(s.Tape)
	if err != nil {
		return 0, err
	}
	v := l.Item()
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return v, fmt.Errorf("%w: the loss is %v", ErrNonFinite, v)
	}
	s.Opt.ZeroGrad()
	s.Tape.Backward(l)
	if s.AfterBackward != nil {
		if err := s.AfterBackward(); err != nil {
			return v, err
		}
	}
	s.Opt.Step(lr)
	return v, nil
}
