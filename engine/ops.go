package engine

import "math"

// This file and ops_*.go are the op contract that model code is written
// against: each op checks its operands, runs its forward (on the backend or
// in Go), and hands its backward to the tape (begin, record). This file has
// the network layers and products.

// Conv2D: x [N,C,H,W], w [O,C,KH,KW], b [O] or nil.
func (tp *Tape) Conv2D(x, w, b *Tensor, p ConvParams) *Tensor {
	const op = "Conv2D"
	checkRank(op, "x", x, 4)
	checkRank(op, "w", w, 4)
	N, C, H, W := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	O, KH, KW := w.shape[0], w.shape[2], w.shape[3]
	if w.shape[1] != C {
		panicf(op, "x %v and w %v: channels differ", x.shape, w.shape)
	}
	if b != nil {
		checkVector(op, "b", b, O, "w", w.shape)
	}
	if p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 {
		panicf(op, "x %v and w %v: invalid params %+v", x.shape, w.shape, p)
	}
	if H+2*p.PadH < KH || W+2*p.PadW < KW {
		panicf(op, "x %v and w %v: kernel larger than the padded input (params %+v)", x.shape, w.shape, p)
	}
	OH := (H+2*p.PadH-KH)/p.StrideH + 1
	OW := (W+2*p.PadW-KW)/p.StrideW + 1
	y := tp.get(N, O, OH, OW)
	tp.b.Conv2D(y, x, w, b, p)
	if tp.begin(y, readsIn|outFree, x, w, b) { // the backward reads x and w only
		tp.record(y, func(g *Tensor) {
			if w.requiresGrad || (b != nil && b.requiresGrad) {
				dw := tp.get(w.shape...)
				var db *Tensor
				if b != nil {
					db = tp.get(b.shape...)
				}
				tp.b.Conv2DBackwardWeights(dw, db, x, g, p)
				tp.addGrad(w, dw, true)
				if db != nil {
					tp.addGrad(b, db, true)
				}
			}
			if x.requiresGrad {
				dx := tp.get(x.shape...)
				tp.b.Conv2DBackwardData(dx, g, w, p)
				tp.addGrad(x, dx, true)
			}
		})
	}
	return y
}

// BNStats are the running statistics of a batch-norm layer (PyTorch
// semantics: running = (1-Momentum)*running + Momentum*batch, with the
// unbiased batch variance).
type BNStats struct {
	Mean, Var *Tensor // [C]
	Momentum  float32 // 0.1 in PyTorch
	Eps       float32 // 1e-5 in PyTorch
}

// NewBNStats returns PyTorch's initial running statistics for c channels:
// mean 0, variance 1, momentum 0.1, eps 1e-5.
func NewBNStats(c int) *BNStats {
	v := New(c)
	for i := range v.data {
		v.data[i] = 1
	}
	return &BNStats{Mean: New(c), Var: v, Momentum: 0.1, Eps: 1e-5}
}

// BatchNorm normalises x [N,C] or [N,C,H,W] per channel. In training mode it
// uses batch statistics and updates the running ones in st (st may be nil
// in training mode: no update, eps 1e-5); otherwise it uses st's running
// statistics. relu fuses a ReLU.
func (tp *Tape) BatchNorm(x, gamma, beta *Tensor, st *BNStats, train, relu bool) *Tensor {
	const op = "BatchNorm"
	if x == nil {
		panicf(op, "x is nil")
	}
	if len(x.shape) != 2 && len(x.shape) != 4 {
		panicf(op, "x %v has rank %d, want 2 or 4", x.shape, len(x.shape))
	}
	C := x.shape[1]
	checkVector(op, "gamma", gamma, C, "x", x.shape)
	checkVector(op, "beta", beta, C, "x", x.shape)
	m := len(x.data) / C // values per channel
	p := BNParams{Eps: 1e-5, Train: train, ReLU: relu}
	if st != nil {
		p.Eps = st.Eps
		checkVector(op, "running mean", st.Mean, C, "x", x.shape)
		checkVector(op, "running var", st.Var, C, "x", x.shape)
	}
	if train && tp.bnSync != nil {
		return tp.batchNormGlobal(x, gamma, beta, st, p)
	}
	var mean, variance *Tensor
	if train {
		if m < 2 {
			panicf(op, "x %v: training needs more than one value per channel", x.shape)
		}
		mean, variance = tp.get(C), tp.get(C)
	} else {
		if st == nil {
			panicf(op, "x %v: inference needs running statistics (st is nil)", x.shape)
		}
		mean, variance = st.Mean, st.Var
	}
	y := tp.get(x.shape...)
	ws := tp.b.BatchNorm(y, x, gamma, beta, mean, variance, p)
	l := readsIn
	if !relu { // the backward reads y only for a fused ReLU's mask
		l |= outFree
	}
	if train && st != nil {
		mom := st.Momentum
		unbias := float32(m) / float32(m-1)
		rm, rv := st.Mean.Data(), st.Var.Data()
		bm, bv := mean.Data(), variance.Data()
		for c := range C {
			rm[c] = (1-mom)*rm[c] + mom*bm[c]
			rv[c] = (1-mom)*rv[c] + mom*bv[c]*unbias
		}
	}
	if tp.begin(y, l, x, gamma, beta) {
		tp.record(y, func(g *Tensor) {
			dx := tp.get(x.shape...)
			dgamma, dbeta := tp.get(C), tp.get(C)
			if train {
				tp.b.BatchNormBackward(dx, dgamma, dbeta, g, x, y, gamma, mean, variance, ws, p)
			} else {
				tp.bnInferenceBackward(dx, dgamma, dbeta, g, x, y, gamma, mean, variance, p)
			}
			tp.addGrad(gamma, dgamma, true)
			tp.addGrad(beta, dbeta, true)
			tp.addGrad(x, dx, true)
		})
	}
	return y
}

// bnInferenceBackward differentiates y = gamma*(x-mean)/sqrt(var+eps)+beta
// (then ReLU) with fixed mean and variance. It is rare (frozen batch norm),
// so it runs here in Go on Plain copies rather than in every backend.
func (tp *Tape) bnInferenceBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, variance *Tensor, p BNParams) {
	xp, gp, yp := tp.plainOf(x), tp.plainOf(dy), y
	if p.ReLU { // else y is unread, and may have been freed
		yp = tp.plainOf(y)
	}
	C := x.shape[1]
	S := len(x.data) / (x.shape[0] * C)
	xd, gd, yd, dxd := xp.data, gp.data, yp.data, dx.data
	for c := range C {
		inv := 1 / math.Sqrt(float64(variance.data[c])+float64(p.Eps))
		mu := float64(mean.data[c])
		ga := float64(gamma.data[c])
		var sg, sgx float64
		for n := range x.shape[0] {
			base := (n*C + c) * S
			for i := base; i < base+S; i++ {
				d := float64(gd[i])
				if p.ReLU && yd[i] <= 0 {
					d = 0
				}
				sg += d
				sgx += d * (float64(xd[i]) - mu) * inv
				dxd[i] = float32(d * ga * inv)
			}
		}
		dgamma.data[c] = float32(sgx)
		dbeta.data[c] = float32(sg)
	}
	tp.releaseTmp(xp, x)
	tp.releaseTmp(gp, dy)
	tp.releaseTmp(yp, y)
}

// ReLU is max(x, 0) elementwise.
func (tp *Tape) ReLU(x *Tensor) *Tensor {
	if x == nil {
		panicf("ReLU", "x is nil")
	}
	y := tp.get(x.shape...)
	tp.b.ReLU(y, x)
	if tp.begin(y, readsIn, x) {
		tp.record(y, func(g *Tensor) {
			dx := tp.get(x.shape...)
			tp.b.ReLUBackward(dx, g, y)
			tp.addGrad(x, dx, true)
		})
	}
	return y
}

// Add returns a+b (same shapes); AddReLU returns relu(a+b).
func (tp *Tape) Add(a, b *Tensor) *Tensor     { return tp.add("Add", a, b, false) }
func (tp *Tape) AddReLU(a, b *Tensor) *Tensor { return tp.add("AddReLU", a, b, true) }

// AddReLUInPlace is AddReLU that may write the result over a's storage,
// which saves one activation buffer per residual block: the caller must not
// use a again. It does so only when a is a buffer of this tape whose producer
// never reads it again (a convolution, or a batch norm without fused ReLU);
// otherwise it is AddReLU.
func (tp *Tape) AddReLUInPlace(a, b *Tensor) *Tensor {
	checkSame("AddReLUInPlace", a, b)
	if !a.outFree || !a.pooled || !a.inUse || a.view || a.grad != nil {
		return tp.add("AddReLUInPlace", a, b, true)
	}
	// y takes over a's storage and a becomes a view of it, so that freeing y
	// (Free, Reset) frees the storage.
	y := tp.viewOf(a, a.shape)
	y.view, y.pooled, a.view = false, true, true
	y.aoff, a.aoff = a.aoff, 0
	y.layout = a.layout
	a.outFree = false
	return tp.addInto(y, a, b, true)
}

func (tp *Tape) add(op string, a, b *Tensor, relu bool) *Tensor {
	checkSame(op, a, b)
	return tp.addInto(tp.get(a.shape...), a, b, relu)
}

func (tp *Tape) addInto(y, a, b *Tensor, relu bool) *Tensor {
	tp.b.Add(y, a, b, relu)
	var l life // the backward reads y (for the ReLU) but neither input
	if !relu {
		l = outFree
	}
	if tp.begin(y, l, a, b) {
		tp.record(y, func(g *Tensor) {
			d := g // g is dead after this node: hand it on to a
			if relu {
				d = tp.get(y.shape...)
				tp.b.ReLUBackward(d, g, y)
			}
			tp.addGrad(b, d, false)
			tp.addGrad(a, d, true)
		})
	}
	return y
}

// sameLayout returns a and b in one common layout: their own if they agree,
// else Plain copies (which the caller releases with releaseTmp).
func (tp *Tape) sameLayout(a, b *Tensor) (*Tensor, *Tensor) {
	if a.layout == b.layout {
		return a, b
	}
	return tp.plainOf(a), tp.plainOf(b)
}

// Mul is the elementwise product (same shapes); Scale multiplies by s.
// Both work in whatever layout their inputs share.
func (tp *Tape) Mul(a, b *Tensor) *Tensor {
	checkSame("Mul", a, b)
	y := tp.product(a, b)
	if tp.begin(y, readsIn, a, b) {
		tp.record(y, func(g *Tensor) {
			tp.mulGrad(b, g, a)
			tp.mulGrad(a, g, b)
		})
	}
	return y
}

// mulGrad adds g*other into x's gradient.
func (tp *Tape) mulGrad(x, g, other *Tensor) {
	if !x.requiresGrad {
		return
	}
	tp.addGrad(x, tp.product(g, other), true)
}

// product returns a new pool tensor a*b (elementwise, a's shape) in the
// layout a and b share, or Plain.
func (tp *Tape) product(a, b *Tensor) *Tensor {
	ap, bp := tp.sameLayout(a, b)
	y := tp.get(a.shape...)
	y.layout = ap.layout
	yd, bd := y.data, bp.data[:len(ap.data)]
	for i, v := range ap.data {
		yd[i] = v * bd[i]
	}
	tp.releaseTmp(ap, a)
	tp.releaseTmp(bp, b)
	return y
}

// Scale returns s*x.
func (tp *Tape) Scale(x *Tensor, s float32) *Tensor {
	if x == nil {
		panicf("Scale", "x is nil")
	}
	y := tp.get(x.shape...)
	y.layout = x.layout
	yd := y.data
	for i, v := range x.data {
		yd[i] = s * v
	}
	if tp.begin(y, readsIn, x) {
		tp.record(y, func(g *Tensor) {
			// g is dead after this node: scale it in place and hand it on.
			for i := range g.data {
				g.data[i] *= s
			}
			tp.addGrad(x, g, true)
		})
	}
	return y
}

// GlobalAvgPool: [N,C,H,W] -> [N,C].
func (tp *Tape) GlobalAvgPool(x *Tensor) *Tensor {
	checkRank("GlobalAvgPool", "x", x, 4)
	y := tp.get(x.shape[0], x.shape[1])
	tp.b.GlobalAvgPool(y, x)
	if tp.begin(y, readsIn, x) {
		tp.record(y, func(g *Tensor) {
			dx := tp.get(x.shape...)
			tp.b.GlobalAvgPoolBackward(dx, g)
			tp.addGrad(x, dx, true)
		})
	}
	return y
}

// MaxPool2D, e.g. PoolParams{3,3,2,2,1,1} for the ImageNet stem. Like
// PyTorch (ceil_mode off) the output size rounds down, and the padding may
// be at most half the kernel.
func (tp *Tape) MaxPool2D(x *Tensor, p PoolParams) *Tensor {
	const op = "MaxPool2D"
	checkRank(op, "x", x, 4)
	if p.KH < 1 || p.KW < 1 || p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 ||
		2*p.PadH > p.KH || 2*p.PadW > p.KW {
		panicf(op, "x %v: invalid params %+v", x.shape, p)
	}
	N, C, H, W := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	if H+2*p.PadH < p.KH || W+2*p.PadW < p.KW {
		panicf(op, "x %v: window larger than the padded input (params %+v)", x.shape, p)
	}
	OH := (H+2*p.PadH-p.KH)/p.StrideH + 1
	OW := (W+2*p.PadW-p.KW)/p.StrideW + 1
	y := tp.get(N, C, OH, OW)
	ws := tp.b.MaxPool2D(y, x, p)
	if tp.begin(y, readsIn, x) {
		tp.record(y, func(g *Tensor) {
			dx := tp.get(x.shape...)
			tp.b.MaxPool2DBackward(dx, g, ws, p)
			tp.addGrad(x, dx, true)
		})
	}
	return y
}

// Linear: x [N,in], w [out,in] (PyTorch's convention), b [out] or nil.
func (tp *Tape) Linear(x, w, b *Tensor) *Tensor {
	const op = "Linear"
	checkRank(op, "x", x, 2)
	checkRank(op, "w", w, 2)
	N, In, Out := x.shape[0], x.shape[1], w.shape[0]
	if w.shape[1] != In {
		panicf(op, "x %v and w %v: input features differ", x.shape, w.shape)
	}
	if b != nil {
		checkVector(op, "b", b, Out, "w", w.shape)
	}
	xp := tp.plainOf(x)
	y := tp.get(N, Out)
	tp.b.MatMul(y, xp, w, false, true, 1, 0)
	if b != nil {
		yd, bd := y.data, b.data
		for n := range N {
			addTo(yd[n*Out:(n+1)*Out], bd)
		}
	}
	if tp.begin(y, readsIn, x, w, b) {
		tp.record(y, func(g *Tensor) {
			gp := tp.plainOf(g)
			if b != nil && b.requiresGrad {
				db := tp.get(Out)
				for o := range Out {
					var s float64
					for n := range N {
						s += float64(gp.data[n*Out+o])
					}
					db.data[o] = float32(s)
				}
				tp.addGrad(b, db, true)
			}
			if w.requiresGrad {
				dw := tp.get(w.shape...)
				tp.b.MatMul(dw, gp, xp, true, false, 1, 0)
				tp.addGrad(w, dw, true)
			}
			if x.requiresGrad {
				dx := tp.get(x.shape...)
				tp.b.MatMul(dx, gp, w, false, false, 1, 0)
				tp.addGrad(x, dx, true)
			}
			tp.releaseTmp(gp, g)
		})
	}
	return y
}

// MatMul: op(a) * op(b) for 2-D a, b.
func (tp *Tape) MatMul(a, b *Tensor, transA, transB bool) *Tensor {
	const op = "MatMul"
	checkRank(op, "a", a, 2)
	checkRank(op, "b", b, 2)
	M, K := a.shape[0], a.shape[1]
	if transA {
		M, K = K, M
	}
	K2, N := b.shape[0], b.shape[1]
	if transB {
		K2, N = N, K2
	}
	if K != K2 {
		panicf(op, "a %v (transA %v) and b %v (transB %v): inner dimensions differ", a.shape, transA, b.shape, transB)
	}
	ap, bp := tp.plainOf(a), tp.plainOf(b)
	c := tp.get(M, N)
	tp.b.MatMul(c, ap, bp, transA, transB, 1, 0)
	if tp.begin(c, readsIn, a, b) {
		tp.record(c, func(g *Tensor) {
			gp := tp.plainOf(g)
			if a.requiresGrad {
				da := tp.get(a.shape...)
				if !transA { // dA = dC op(B)^T
					tp.b.MatMul(da, gp, bp, false, !transB, 1, 0)
				} else { // dA = op(B) dC^T
					tp.b.MatMul(da, bp, gp, transB, true, 1, 0)
				}
				tp.addGrad(a, da, true)
			}
			if b.requiresGrad {
				db := tp.get(b.shape...)
				if !transB { // dB = op(A)^T dC
					tp.b.MatMul(db, ap, gp, !transA, false, 1, 0)
				} else { // dB = dC^T op(A)
					tp.b.MatMul(db, gp, ap, true, transA, 1, 0)
				}
				tp.addGrad(b, db, true)
			}
			tp.releaseTmp(gp, g)
		})
	}
	return c
}
