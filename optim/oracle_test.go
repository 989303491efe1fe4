package optim

import (
	"math"

	"github.com/simclr-go/simclr/nn"
)

// The oracles below restate each optimizer's published update in float64,
// written from the reference sources (lars_optimizer.py, torch.optim), one
// parameter at a time, to check the fused float32 loops against.

type oracle interface {
	// step updates w in place given the gradients g.
	step(lr float64, params []nn.Param, w, g [][]float64)
	// state returns the buffers under the optimizer's state names.
	state(params []nn.Param) map[string][]float64
}

type larsOracle struct {
	cfg LARSConfig
	v   [][]float64
}

func (o *larsOracle) step(lr float64, params []nn.Param, w, g [][]float64) {
	if o.v == nil {
		o.v = zerosLike(w)
	}
	for i, p := range params {
		grad := append([]float64(nil), g[i]...)
		trust := 1.0
		if !p.Excluded() {
			for j := range grad {
				grad[j] += o.cfg.WeightDecay * w[i][j]
			}
			wn, gn := norm(w[i]), norm(grad)
			if wn > 0 && gn > 0 {
				trust = o.cfg.Eta * wn / gn
			}
		}
		scaled := lr * trust
		for j := range grad {
			o.v[i][j] = o.cfg.Momentum*o.v[i][j] + scaled*grad[j]
			upd := o.v[i][j]
			if o.cfg.Nesterov {
				upd = o.cfg.Momentum*o.v[i][j] + scaled*grad[j]
			}
			w[i][j] -= upd
		}
	}
}

func (o *larsOracle) state(params []nn.Param) map[string][]float64 {
	return named("momentum", params, o.v)
}

type sgdOracle struct {
	cfg SGDConfig
	buf [][]float64
}

func (o *sgdOracle) step(lr float64, params []nn.Param, w, g [][]float64) {
	first := o.buf == nil
	if first {
		o.buf = zerosLike(w)
	}
	for i, p := range params {
		for j := range w[i] {
			d := g[i][j]
			if !(o.cfg.ExcludeFromDecay && p.Excluded()) {
				d += o.cfg.WeightDecay * w[i][j]
			}
			if o.cfg.Momentum != 0 {
				if first {
					o.buf[i][j] = d // torch.clone(d_p) on the first step
				} else {
					o.buf[i][j] = o.cfg.Momentum*o.buf[i][j] + d
				}
				if o.cfg.Nesterov {
					d += o.cfg.Momentum * o.buf[i][j]
				} else {
					d = o.buf[i][j]
				}
			}
			w[i][j] -= lr * d
		}
	}
}

func (o *sgdOracle) state(params []nn.Param) map[string][]float64 {
	if o.cfg.Momentum == 0 {
		return map[string][]float64{}
	}
	return named("momentum", params, o.buf)
}

type adamOracle struct {
	cfg  AdamConfig
	m, v [][]float64
	t    int
}

func (o *adamOracle) step(lr float64, params []nn.Param, w, g [][]float64) {
	if o.m == nil {
		o.m, o.v = zerosLike(w), zerosLike(w)
	}
	o.t++
	b1, b2 := o.cfg.Beta1, o.cfg.Beta2
	bc1 := 1 - math.Pow(b1, float64(o.t))
	bc2 := 1 - math.Pow(b2, float64(o.t))
	for i, p := range params {
		wd := o.cfg.WeightDecay
		if o.cfg.ExcludeFromDecay && p.Excluded() {
			wd = 0
		}
		for j := range w[i] {
			grad := g[i][j]
			if o.cfg.Decoupled {
				w[i][j] *= 1 - lr*wd
			} else {
				grad += wd * w[i][j]
			}
			o.m[i][j] = b1*o.m[i][j] + (1-b1)*grad
			o.v[i][j] = b2*o.v[i][j] + (1-b2)*grad*grad
			denom := math.Sqrt(o.v[i][j])/math.Sqrt(bc2) + o.cfg.Eps
			w[i][j] -= lr / bc1 * o.m[i][j] / denom
		}
	}
}

func (o *adamOracle) state(params []nn.Param) map[string][]float64 {
	st := named("exp_avg", params, o.m)
	for k, v := range named("exp_avg_sq", params, o.v) {
		st[k] = v
	}
	for _, p := range params {
		st["step/"+p.Name] = []float64{float64(o.t)}
	}
	return st
}

func zerosLike(w [][]float64) [][]float64 {
	out := make([][]float64, len(w))
	for i := range w {
		out[i] = make([]float64, len(w[i]))
	}
	return out
}

func named(prefix string, params []nn.Param, bufs [][]float64) map[string][]float64 {
	st := make(map[string][]float64, len(params))
	for i, p := range params {
		st[prefix+"/"+p.Name] = bufs[i]
	}
	return st
}
