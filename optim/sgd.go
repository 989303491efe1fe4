package optim

import (
	"fmt"

	"github.com/simclr-go/simclr/nn"
)

// SGDConfig are SGD's hyperparameters (PyTorch's torch.optim.SGD with
// dampening 0).
type SGDConfig struct {
	Momentum    float64 // 0 for plain SGD
	WeightDecay float64 // L2 penalty added to the gradient
	Nesterov    bool    // needs Momentum > 0
	// ExcludeFromDecay skips weight decay for parameters with
	// Param.Excluded() (batch-norm parameters and biases). PyTorch's default
	// (false) decays everything.
	ExcludeFromDecay bool
}

// SGD is stochastic gradient descent with momentum, exactly as PyTorch:
//
//	d = g + wd·w
//	b = momentum·b + d        (b = d on the first step)
//	d = d + momentum·b  if Nesterov, else b
//	w = w - lr·d
//
// Unlike LARS, the learning rate is applied after the momentum, so changing
// lr rescales the whole step at once.
type SGD struct {
	base
	cfg SGDConfig
	lr  float32
}

// NewSGD returns an SGD optimizer over params.
func NewSGD(params []nn.Param, cfg SGDConfig) (*SGD, error) {
	if err := checkMomentum("SGD", cfg.Momentum); err != nil {
		return nil, err
	}
	if err := checkWeightDecay("SGD", cfg.WeightDecay); err != nil {
		return nil, err
	}
	if cfg.Nesterov && cfg.Momentum == 0 {
		return nil, fmt.Errorf("optim: SGD: Nesterov momentum needs a momentum > 0")
	}
	var slots []string
	if cfg.Momentum > 0 {
		slots = []string{"momentum"}
	}
	b, err := newBase("SGD", params, slots...)
	if err != nil {
		return nil, err
	}
	o := &SGD{base: b, cfg: cfg}
	o.pool = newWorkerPool(o.params, o.update)
	return o, nil
}

// Step applies one SGD update with learning rate lr.
func (o *SGD) Step(lr float32) {
	o.ensureState()
	o.lr = lr
	o.pool.run()
}

func (o *SGD) update(i int) {
	p := o.params[i]
	gt := p.T.Grad()
	if gt == nil {
		return
	}
	w, g := p.T.Data(), gt.Data()
	g = g[:len(w)]
	lr := o.lr
	wd := float32(o.cfg.WeightDecay)
	if o.cfg.ExcludeFromDecay && p.Excluded() {
		wd = 0
	}
	if o.cfg.Momentum == 0 {
		for j, x := range w {
			w[j] = x - lr*(g[j]+wd*x)
		}
		return
	}
	mom := float32(o.cfg.Momentum)
	b := o.state[0][i][:len(w)]
	// With dampening 0, PyTorch's first-step b = d equals momentum·0 + d.
	if o.cfg.Nesterov {
		for j, x := range w {
			d := g[j] + wd*x
			nb := mom*b[j] + d
			b[j] = nb
			w[j] = x - lr*(d+mom*nb)
		}
		return
	}
	for j, x := range w {
		nb := mom*b[j] + (g[j] + wd*x)
		b[j] = nb
		w[j] = x - lr*nb
	}
}
