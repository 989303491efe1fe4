package engine

import "math"

// Row-wise ops on 2-D tensors (normalisation, softmax, cross-entropy) and
// reductions, computed in Go.

// Plain.
func (tp *Tape) rows2D(op string, x *Tensor) (*Tensor, int, int) {
	checkRank(op, "x", x, 2)
	return tp.plainOf(x), x.shape[0], x.shape[1]
}

// L2Normalize divides each row of x [N,D] by max(||row||, eps).
func (tp *Tape) L2Normalize(x *Tensor, eps float32) *Tensor {
	xp, N, D := tp.rows2D("L2Normalize", x)
	y := tp.get(N, D)
	norms := tp.get(N)
	for n := range N {
		row := xp.data[n*D : (n+1)*D]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		nrm := math.Sqrt(ss)
		norms.data[n] = float32(nrm)
		inv := 1 / math.Max(nrm, float64(eps))
		yr := y.data[n*D : (n+1)*D]
		for i, v := range row {
			yr[i] = float32(float64(v) * inv)
		}
	}
	if tp.begin(y, readsIn, x) {
		tp.record(y, func(g *Tensor) {
			gp := tp.plainOf(g)
			dx := tp.get(N, D)
			for n := range N {
				gr, yr, dr := gp.data[n*D:(n+1)*D], y.data[n*D:(n+1)*D], dx.data[n*D:(n+1)*D]
				nrm := float64(norms.data[n])
				if nrm <= float64(eps) { // y = x/eps: a plain scaling
					for i, v := range gr {
						dr[i] = float32(float64(v) / float64(eps))
					}
					continue
				}
				// y = x/|x|: dx = (g - y (y.g)) / |x|
				var dot float64
				for i, v := range gr {
					dot += float64(v) * float64(yr[i])
				}
				for i, v := range gr {
					dr[i] = float32((float64(v) - float64(yr[i])*dot) / nrm)
				}
			}
			tp.releaseTmp(gp, g)
			tp.addGrad(x, dx, true)
		})
	}
	tp.releaseTmp(xp, x)
	return y
}

// LogSoftmax over the last axis of x [N,D].
func (tp *Tape) LogSoftmax(x *Tensor) *Tensor {
	xp, N, D := tp.rows2D("LogSoftmax", x)
	y := tp.get(N, D)
	for n := range N {
		logSoftmaxRow(y.data[n*D:(n+1)*D], xp.data[n*D:(n+1)*D])
	}
	tp.releaseTmp(xp, x)
	if tp.begin(y, readsIn, x) {
		tp.record(y, func(g *Tensor) {
			gp := tp.plainOf(g)
			dx := tp.get(N, D)
			for n := range N {
				gr, yr, dr := gp.data[n*D:(n+1)*D], y.data[n*D:(n+1)*D], dx.data[n*D:(n+1)*D]
				var s float64
				for _, v := range gr {
					s += float64(v)
				}
				// dx = g - softmax * sum(g)
				for i, v := range gr {
					dr[i] = float32(float64(v) - math.Exp(float64(yr[i]))*s)
				}
			}
			tp.releaseTmp(gp, g)
			tp.addGrad(x, dx, true)
		})
	}
	return y
}

// logSoftmaxRow writes the log-softmax of x into y, shifting by the maximum
// so exp never overflows. It returns log(sum(exp(x))).
func logSoftmaxRow(y, x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	lse := m + math.Log(s)
	for i, v := range x {
		y[i] = float32(float64(v) - lse)
	}
	return lse
}

// CrossEntropy is the mean over rows of -log softmax(logits)[label].
func (tp *Tape) CrossEntropy(logits *Tensor, labels []int) *Tensor {
	const op = "CrossEntropy"
	xp, N, D := tp.rows2D(op, logits)
	if len(labels) != N {
		panicf(op, "logits %v and %d labels: batch sizes differ", logits.shape, len(labels))
	}
	for i, l := range labels {
		if l < 0 || l >= D {
			panicf(op, "logits %v: label %d of row %d is out of range [0,%d)", logits.shape, l, i, D)
		}
	}
	y := tp.get(1)
	rec := tp.begin(y, readsIn, logits)
	// With recording on, probs keeps (softmax - onehot)/N, the gradient for
	// a unit upstream gradient, so backward needs no reference to labels.
	probs := tp.get(N, D)
	var total float64
	for n := range N {
		pr := probs.data[n*D : (n+1)*D]
		lse := logSoftmaxRow(pr, xp.data[n*D:(n+1)*D])
		total += lse - float64(xp.data[n*D+labels[n]])
		if rec {
			for i, v := range pr {
				pr[i] = float32(math.Exp(float64(v)) / float64(N))
			}
			pr[labels[n]] -= float32(1 / float64(N))
		}
	}
	tp.releaseTmp(xp, logits)
	y.data[0] = float32(total / float64(N))
	if rec {
		tp.record(y, func(g *Tensor) {
			s := g.data[0]
			dx := tp.get(N, D)
			for i, v := range probs.data {
				dx.data[i] = v * s
			}
			tp.addGrad(logits, dx, true)
		})
	} else {
		tp.release(probs)
	}
	return y
}

// Mean and Sum reduce all elements to a one-element tensor of shape [1].
func (tp *Tape) Mean(x *Tensor) *Tensor { return tp.reduce("Mean", x, true) }
func (tp *Tape) Sum(x *Tensor) *Tensor  { return tp.reduce("Sum", x, false) }

func (tp *Tape) reduce(op string, x *Tensor, mean bool) *Tensor {
	if x == nil {
		panicf(op, "x is nil")
	}
	var s float64
	for _, v := range x.data { // the order does not matter: any layout
		s += float64(v)
	}
	scale := 1.0
	if mean {
		scale = 1 / float64(len(x.data))
	}
	y := tp.get(1)
	y.data[0] = float32(s * scale)
	if tp.begin(y, readsIn, x) {
		tp.record(y, func(g *Tensor) {
			v := float32(float64(g.data[0]) * scale)
			dx := tp.get(x.shape...)
			dx.layout = x.layout // a constant is the same in every layout
			for i := range dx.data {
				dx.data[i] = v
			}
			tp.addGrad(x, dx, true)
		})
	}
	return y
}
