package optim

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/simclr-go/simclr/nn"
)

// Settings are the hyperparameters a training config gives every optimizer
// built by New. Momentum is beta1 for adam and adamw (0 keeps PyTorch's 0.9).
type Settings struct {
	Momentum    float64
	WeightDecay float64
	Nesterov    bool
}

// LARSEta is the trust coefficient of the LARS optimizers New builds
// (google-research/simclr's default).
const LARSEta = 1e-3

// Names lists the optimizers New builds.
func Names() []string { return []string{"lars", "sgd", "adam", "adamw"} }

// CheckName, CheckMomentum, CheckWeightDecay and CheckNesterov validate one
// setting each. They are the only copy of these limits: the constructors
// and the training config (train.Config.Validate) call them.
func CheckName(name string) error {
	if !slices.Contains(Names(), name) {
		return fmt.Errorf("optimizer %q: want one of %s", name, strings.Join(Names(), "|"))
	}
	return nil
}

// CheckMomentum: see CheckName.
func CheckMomentum(m float64) error {
	if !(m >= 0 && m < 1) {
		return fmt.Errorf("momentum %v is not in [0, 1)", m)
	}
	return nil
}

// CheckWeightDecay: see CheckName.
func CheckWeightDecay(wd float64) error {
	if !(wd >= 0) || math.IsInf(wd, 0) {
		return fmt.Errorf("weight decay %v is not a non-negative number", wd)
	}
	return nil
}

// CheckNesterov: Nesterov momentum exists for sgd and lars, and needs a
// momentum > 0.
func CheckNesterov(name string, nesterov bool, momentum float64) error {
	switch {
	case !nesterov:
		return nil
	case name != "sgd" && name != "lars":
		return fmt.Errorf("nesterov: only for optimizers sgd and lars (got %s)", name)
	case momentum == 0:
		return fmt.Errorf("nesterov: needs momentum > 0")
	}
	return nil
}

// New builds the optimizer called name (one of Names) over params.
func New(name string, params []nn.Param, s Settings) (Optimizer, error) {
	switch name {
	case "lars":
		return NewLARS(params, LARSConfig{Momentum: s.Momentum, WeightDecay: s.WeightDecay, Eta: LARSEta, Nesterov: s.Nesterov})
	case "sgd":
		return NewSGD(params, SGDConfig{Momentum: s.Momentum, WeightDecay: s.WeightDecay, Nesterov: s.Nesterov})
	case "adam", "adamw":
		ac := AdamDefaults
		if name == "adamw" {
			ac = AdamWDefaults
		}
		ac.WeightDecay = s.WeightDecay
		if s.Momentum > 0 {
			ac.Beta1 = s.Momentum
		}
		return NewAdam(params, ac)
	}
	return nil, fmt.Errorf("optim: %w", CheckName(name))
}

// ScalingNames lists the learning-rate scalings of Schedule.
func ScalingNames() []string { return []string{"linear", "sqrt", "none"} }

// CheckScaling validates Schedule.Scaling.
func CheckScaling(s string) error {
	if !slices.Contains(ScalingNames(), s) {
		return fmt.Errorf("scaling %q is not one of %s", s, strings.Join(ScalingNames(), ", "))
	}
	return nil
}
