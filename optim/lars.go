package optim

import (
	"fmt"
	"math"

	"github.com/simclr-go/simclr/nn"
)

// LARSConfig are LARS's hyperparameters.
type LARSConfig struct {
	Momentum    float64 // 0.9 in SimCLR
	WeightDecay float64 // 1e-6 in SimCLR (ImageNet and CIFAR)
	Eta         float64 // trust coefficient η, 1e-3
	Nesterov    bool
}

// LARSDefaults are SimCLR's settings.
var LARSDefaults = LARSConfig{Momentum: 0.9, WeightDecay: 1e-6, Eta: 1e-3}

// LARS is Layer-wise Adaptive Rate Scaling (You, Gitman, Ginsburg 2017) as
// SimCLR uses it (google-research/simclr lars_optimizer.py, classic
// momentum). For each parameter w with gradient g:
//
//	d     = g + wd·w                     (weight decay, before the trust ratio)
//	trust = η·‖w‖/‖d‖  if ‖w‖ > 0 and ‖d‖ > 0, else 1
//	v     = momentum·v + lr·trust·d      (the learning rate is inside the momentum)
//	w     = w - v                        (Nesterov: w - (momentum·v + lr·trust·d))
//
// Parameters for which Param.Excluded() is true (batch-norm scale and shift,
// biases) get neither weight decay nor the trust ratio: plain momentum SGD
// with trust = 1. Norms are accumulated in float64.
type LARS struct {
	base
	cfg LARSConfig
	lr  float32
}

// NewLARS returns a LARS optimizer over params.
func NewLARS(params []nn.Param, cfg LARSConfig) (*LARS, error) {
	if err := checkMomentum("LARS", cfg.Momentum); err != nil {
		return nil, err
	}
	if err := checkWeightDecay("LARS", cfg.WeightDecay); err != nil {
		return nil, err
	}
	if !(cfg.Eta > 0) || math.IsInf(cfg.Eta, 0) {
		return nil, fmt.Errorf("optim: LARS: trust coefficient eta %v is not a positive number", cfg.Eta)
	}
	b, err := newBase("LARS", params, "momentum")
	if err != nil {
		return nil, err
	}
	o := &LARS{base: b, cfg: cfg}
	o.pool = newWorkerPool(o.params, o.update)
	return o, nil
}

// Step applies one LARS update with learning rate lr.
func (o *LARS) Step(lr float32) {
	o.ensureState()
	o.lr = lr
	o.pool.run()
}

func (o *LARS) update(i int) {
	p := o.params[i]
	gt := p.T.Grad()
	if gt == nil {
		return
	}
	w, g, v := p.T.Data(), gt.Data(), o.state[0][i]
	mom := float32(o.cfg.Momentum)
	wd := float32(o.cfg.WeightDecay)
	scaled := o.lr
	if p.Excluded() {
		wd = 0
	} else {
		wn, dn := norms2(w, g, wd)
		if wn > 0 && dn > 0 {
			scaled = float32(float64(o.lr) * o.cfg.Eta * math.Sqrt(wn) / math.Sqrt(dn))
		}
	}
	g, v = g[:len(w)], v[:len(w)]
	if o.cfg.Nesterov {
		for j, x := range w {
			d := scaled * (g[j] + wd*x)
			nv := mom*v[j] + d
			v[j] = nv
			w[j] = x - (mom*nv + d)
		}
		return
	}
	for j, x := range w {
		nv := mom*v[j] + scaled*(g[j]+wd*x)
		v[j] = nv
		w[j] = x - nv
	}
}

func checkMomentum(kind string, m float64) error {
	if err := CheckMomentum(m); err != nil {
		return fmt.Errorf("optim: %s: %w", kind, err)
	}
	return nil
}

func checkWeightDecay(kind string, wd float64) error {
	if err := CheckWeightDecay(wd); err != nil {
		return fmt.Errorf("optim: %s: %w", kind, err)
	}
	return nil
}

// norms2 returns ‖w‖² and ‖g + wd·w‖², accumulated in float64 on four
// independent chains so the adds pipeline.
func norms2(w, g []float32, wd float32) (wn, dn float64) {
	g = g[:len(w)]
	var w0, w1, w2, w3, d0, d1, d2, d3 float64
	j := 0
	for ; j+4 <= len(w); j += 4 {
		x0, x1, x2, x3 := float64(w[j]), float64(w[j+1]), float64(w[j+2]), float64(w[j+3])
		e0 := float64(g[j] + wd*w[j])
		e1 := float64(g[j+1] + wd*w[j+1])
		e2 := float64(g[j+2] + wd*w[j+2])
		e3 := float64(g[j+3] + wd*w[j+3])
		w0 += x0 * x0
		w1 += x1 * x1
		w2 += x2 * x2
		w3 += x3 * x3
		d0 += e0 * e0
		d1 += e1 * e1
		d2 += e2 * e2
		d3 += e3 * e3
	}
	for ; j < len(w); j++ {
		x, e := float64(w[j]), float64(g[j]+wd*w[j])
		w0 += x * x
		d0 += e * e
	}
	return (w0 + w1) + (w2 + w3), (d0 + d1) + (d2 + d3)
}
