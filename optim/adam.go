package optim

import (
	"fmt"
	"math"

	"github.com/simclr-go/simclr/nn"
)

// AdamConfig are Adam's hyperparameters (PyTorch's torch.optim.Adam and
// AdamW, without amsgrad).
type AdamConfig struct {
	Beta1, Beta2 float64 // 0.9, 0.999
	Eps          float64 // 1e-8, added to the bias-corrected √v
	WeightDecay  float64
	// Decoupled selects AdamW (w ← w·(1 - lr·wd) before the Adam step)
	// instead of Adam's L2 penalty added to the gradient.
	Decoupled bool
	// ExcludeFromDecay skips weight decay for parameters with
	// Param.Excluded() (batch-norm parameters and biases). PyTorch's default
	// (false) decays everything.
	ExcludeFromDecay bool
}

// AdamDefaults and AdamWDefaults are PyTorch's defaults.
var (
	AdamDefaults  = AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	AdamWDefaults = AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2, Decoupled: true}
)

// Adam is Adam (Kingma & Ba) or, with Decoupled, AdamW (Loshchilov &
// Hutter), with PyTorch's update. For parameter w at its step t (counted per
// parameter, as in PyTorch):
//
//	AdamW: w = w·(1 - lr·wd)       Adam: g = g + wd·w
//	m = β1·m + (1-β1)·g
//	v = β2·v + (1-β2)·g²
//	w = w - (lr/(1-β1^t)) · m / (√v/√(1-β2^t) + eps)
type Adam struct {
	base
	cfg AdamConfig
	lr  float32
}

// NewAdam returns an Adam (or AdamW, with cfg.Decoupled) optimizer.
func NewAdam(params []nn.Param, cfg AdamConfig) (*Adam, error) {
	kind := "Adam"
	if cfg.Decoupled {
		kind = "AdamW"
	}
	for _, b := range []float64{cfg.Beta1, cfg.Beta2} {
		if !(b >= 0 && b < 1) {
			return nil, fmt.Errorf("optim: %s: beta %v is not in [0, 1)", kind, b)
		}
	}
	if !(cfg.Eps > 0) || math.IsInf(cfg.Eps, 0) {
		return nil, fmt.Errorf("optim: %s: eps %v is not a positive number", kind, cfg.Eps)
	}
	if err := checkWeightDecay(kind, cfg.WeightDecay); err != nil {
		return nil, err
	}
	b, err := newBase(kind, params, "exp_avg", "exp_avg_sq")
	if err != nil {
		return nil, err
	}
	b.steps = make([]int, len(params))
	o := &Adam{base: b, cfg: cfg}
	o.pool = newWorkerPool(o.params, o.update)
	return o, nil
}

// Step applies one Adam update with learning rate lr.
func (o *Adam) Step(lr float32) {
	o.ensureState()
	o.lr = lr
	o.pool.run()
}

func (o *Adam) update(i int) {
	p := o.params[i]
	gt := p.T.Grad()
	if gt == nil {
		return
	}
	o.steps[i]++
	t := float64(o.steps[i])
	w, g := p.T.Data(), gt.Data()
	g = g[:len(w)]
	m, v := o.state[0][i][:len(w)], o.state[1][i][:len(w)]
	wd := float32(o.cfg.WeightDecay)
	if o.cfg.ExcludeFromDecay && p.Excluded() {
		wd = 0
	}
	b1, b2 := float32(o.cfg.Beta1), float32(o.cfg.Beta2)
	// 1-β in float64 first: float32(1)-float32(0.999) is off by 1.3e-5.
	c1, c2 := float32(1-o.cfg.Beta1), float32(1-o.cfg.Beta2)
	stepSize := float32(float64(o.lr) / (1 - math.Pow(o.cfg.Beta1, t)))
	invBC2 := float32(1 / math.Sqrt(1-math.Pow(o.cfg.Beta2, t)))
	eps := float32(o.cfg.Eps)
	decay, l2 := float32(1), wd
	if o.cfg.Decoupled {
		decay, l2 = 1-o.lr*wd, 0
	}
	for j, x := range w {
		gj := g[j] + l2*x
		x *= decay
		mj := b1*m[j] + c1*gj
		vj := b2*v[j] + c2*gj*gj
		m[j], v[j] = mj, vj
		w[j] = x - stepSize*mj/(float32(math.Sqrt(float64(vj)))*invBC2+eps)
	}
}
