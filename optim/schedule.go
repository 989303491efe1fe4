package optim

import (
	"fmt"
	"math"
)

// Schedule is SimCLR's learning-rate schedule (google-research/simclr
// WarmUpAndCosineDecay), evaluated per iteration:
//
//	peak   = Base·Batch/256 (Scaling "linear"), Base·√Batch ("sqrt") or Base ("none")
//	lr(s)  = peak·s/WarmupSteps                                   for s < WarmupSteps
//	       = peak·(1 + cos(π·(s-WarmupSteps)/(TotalSteps-WarmupSteps)))/2   after,
//
// reaching 0 at TotalSteps and staying there.
type Schedule struct {
	Base        float64
	Scaling     string // "linear", "sqrt" or "none"
	Batch       int    // source images per step (not views)
	WarmupSteps int
	TotalSteps  int
}

// Validate reports a schedule that LR cannot evaluate sensibly.
func (s Schedule) Validate() error {
	switch {
	case !(s.Base >= 0) || math.IsInf(s.Base, 0):
		return fmt.Errorf("optim: schedule: base learning rate %v is not a non-negative number", s.Base)
	case CheckScaling(s.Scaling) != nil:
		return fmt.Errorf("optim: schedule: %w", CheckScaling(s.Scaling))
	case s.Scaling != "none" && s.Batch < 1:
		return fmt.Errorf("optim: schedule: batch size %d must be at least 1 for %s scaling", s.Batch, s.Scaling)
	case s.WarmupSteps < 0:
		return fmt.Errorf("optim: schedule: %d warm-up steps", s.WarmupSteps)
	case s.TotalSteps < s.WarmupSteps:
		return fmt.Errorf("optim: schedule: total steps %d fewer than warm-up steps %d", s.TotalSteps, s.WarmupSteps)
	}
	return nil
}

// Peak is the learning rate after batch scaling, reached at the end of the
// warm-up.
func (s Schedule) Peak() float64 {
	switch s.Scaling {
	case "linear":
		return s.Base * float64(s.Batch) / 256
	case "sqrt":
		return s.Base * math.Sqrt(float64(s.Batch))
	default:
		return s.Base
	}
}

// LR is the learning rate for iteration step (0-based). Call Validate first:
// an invalid schedule gives meaningless values.
func (s Schedule) LR(step int) float64 {
	peak := s.Peak()
	if step < 0 {
		return 0
	}
	if step < s.WarmupSteps {
		return peak * float64(step) / float64(s.WarmupSteps)
	}
	if step >= s.TotalSteps {
		return 0
	}
	decay := s.TotalSteps - s.WarmupSteps // > 0 here
	return peak * 0.5 * (1 + math.Cos(math.Pi*float64(step-s.WarmupSteps)/float64(decay)))
}
