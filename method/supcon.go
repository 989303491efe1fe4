package method

import (
	"fmt"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/loss"
	"github.com/simclr-go/simclr/nn"
)

func init() {
	Register(Spec{
		Name:   "supcon",
		Doc:    "supervised contrastive: every view of the same class is a positive; needs labels",
		Labels: true,
		New:    func(m *nn.Model, cfg Config) (Method, error) { return &supCon{newTwoView(m, cfg)}, nil },
	})
}

// supCon is supervised contrastive learning (Khosla et al. 2020, L_out) on
// z = g(f(x)) of both views: the same network and views as SimCLR, with
// every other view of an image's class as a positive.
type supCon struct{ twoView }

func (s *supCon) Loss(tp *engine.Tape, b *data.PairBatch) (*engine.Tensor, loss.Stats, error) {
	lab, err := labels(b)
	if err != nil {
		return nil, loss.Stats{}, fmt.Errorf("supcon: %w", err)
	}
	if s.cfg.GatherLabels != nil {
		if lab, err = s.cfg.GatherLabels(lab); err != nil {
			return nil, loss.Stats{}, fmt.Errorf("supcon: %w", err)
		}
	}
	l, st := loss.SupCon(tp, s.projections(tp, b), lab, s.tau())
	return l, st, nil
}
