package method

import (
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/loss"
	"github.com/simclr-go/simclr/nn"
)

func init() {
	Register(Spec{
		Name: "simclr",
		Doc:  "NT-Xent between the two views of each image; no labels",
		New:  func(m *nn.Model, cfg Config) (Method, error) { return &simCLR{newTwoView(m, cfg)}, nil },
	})
}

// simCLR is SimCLR (Chen et al. 2020): NT-Xent on z = g(f(x)) of both
// views, each view's positive the other view of its image.
type simCLR struct{ twoView }

func (s *simCLR) Loss(tp *engine.Tape, b *data.PairBatch) (*engine.Tensor, loss.Stats, error) {
	z := s.projections(tp, b)
	l, st := loss.NTXent(tp, z, z.Dim(0)/2, s.tau())
	return l, st, nil
}
