package engine

import (
	"fmt"
	"math"
)

// This file is the op contract that model code is written against.

// node records how a tensor was produced, for the backward pass.
type node struct {
	out      *Tensor
	backward func(grad *Tensor) // accumulates into the inputs' grads
}

// Tape records ops for reverse-mode autodiff and owns the pool of
// intermediate buffers. A Tape is not safe for concurrent use.
//
// Ops run eagerly; the tape keeps the recorded nodes in creation order, which
// is a topological order, so Backward simply walks them in reverse.
type Tape struct {
	b      Backend
	noGrad bool
	// inBackward is set while Backward runs (see get).
	inBackward bool
	pool       pool
	nodes      []*node // nodes[:nnodes] are recorded since Reset; the rest are spare
	nnodes     int
}

// NewTape returns a tape that runs its kernels on b.
func NewTape(b Backend) *Tape {
	if b == nil {
		panic("engine: NewTape: nil backend")
	}
	return &Tape{b: b}
}

// Backend returns the tape's backend.
func (tp *Tape) Backend() Backend { return tp.b }

// SetGrad turns recording on (default) or off (inference).
func (tp *Tape) SetGrad(on bool) { tp.noGrad = !on }

func panicf(op, format string, args ...any) {
	panic("engine: " + op + ": " + fmt.Sprintf(format, args...))
}

func checkRank(op, name string, t *Tensor, rank int) {
	if t == nil {
		panicf(op, "%s is nil", name)
	}
	if len(t.shape) != rank {
		panicf(op, "%s %v has rank %d, want %d", name, t.shape, len(t.shape), rank)
	}
}

func checkVector(op, name string, t *Tensor, n int, ref string, refShape []int) {
	if t == nil {
		panicf(op, "%s is nil", name)
	}
	if len(t.shape) != 1 || t.shape[0] != n {
		panicf(op, "%s %v does not match %s %v (want [%d])", name, t.shape, ref, refShape, n)
	}
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func checkSame(op string, a, b *Tensor) {
	if a == nil || b == nil {
		panicf(op, "nil operand")
	}
	if !sameShape(a.shape, b.shape) {
		panicf(op, "a %v and b %v: shapes differ", a.shape, b.shape)
	}
}

// rec reports whether an op with these inputs must be recorded, and if so
// marks them as saved for its backward (see Free).
func (tp *Tape) rec(a, b, c *Tensor) bool {
	if !tp.recording(a, b, c) {
		return false
	}
	for _, t := range [...]*Tensor{a, b, c} {
		if t != nil {
			t.saved = true
		}
	}
	return true
}

// recording is rec for ops whose backward reads none of their inputs.
func (tp *Tape) recording(a, b, c *Tensor) bool {
	if tp.noGrad {
		return false
	}
	return a.requiresGrad || (b != nil && b.requiresGrad) || (c != nil && c.requiresGrad)
}

func (tp *Tape) record(out *Tensor, backward func(g *Tensor)) {
	var n *node
	if tp.nnodes < len(tp.nodes) {
		n = tp.nodes[tp.nnodes]
	} else {
		n = new(node)
		tp.nodes = append(tp.nodes, n)
	}
	tp.nnodes++
	n.out = out
	n.backward = backward
	out.node = n
	out.requiresGrad = true
}

// plainOf returns t if it is Plain, else an unrecorded Plain pool copy.
func (tp *Tape) plainOf(t *Tensor) *Tensor {
	if t.layout == Plain {
		return t
	}
	p := tp.get(t.shape...)
	tp.b.ToPlain(p, t)
	return p
}

// releaseTmp returns a temporary made by plainOf.
func (tp *Tape) releaseTmp(tmp, orig *Tensor) {
	if tmp != orig {
		tp.release(tmp)
	}
}

func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// addGrad accumulates g (same number of elements as x, any layout) into x's
// gradient. With own set the caller hands g over: addGrad adopts it as x's
// gradient or returns it to the pool, and the caller must not touch g again.
// Leaves get persistent Plain Go memory; intermediates get pool buffers that
// are exclusively theirs (gradFor == x), so accumulation may work in place.
func (tp *Tape) addGrad(x, g *Tensor, own bool) {
	if !x.requiresGrad {
		if own {
			tp.release(g)
		}
		return
	}
	if len(g.data) != numel(x.shape) { // x itself may have been freed
		panicf("Backward", "gradient %v for tensor %v has the wrong size", g.shape, x.shape)
	}
	if x.node == nil { // leaf
		if x.grad == nil {
			x.grad = &Tensor{shape: append([]int(nil), x.shape...), data: make([]float32, len(x.data))}
			if g.layout == Plain {
				copy(x.grad.data, g.data)
			} else {
				tp.b.ToPlain(x.grad, g)
			}
		} else {
			gp := tp.plainOf(g)
			addTo(x.grad.data, gp.data)
			tp.releaseTmp(gp, g)
		}
		if own {
			tp.release(g)
		}
		return
	}
	if x.grad == nil {
		if !own || !g.pooled || !g.inUse {
			c := tp.get(x.shape...)
			copy(c.data, g.data)
			c.layout = g.layout
			g = c
		}
		g.shape = append(g.shape[:0], x.shape...)
		g.gradFor = x
		x.grad = g
		return
	}
	if x.grad.layout == g.layout {
		if sameShape(x.grad.shape, g.shape) {
			// The backend's add is vectorised and threaded; these are
			// activation-sized (the residual branches' gradients).
			tp.b.Add(x.grad, x.grad, g, false)
		} else {
			addTo(x.grad.data, g.data)
		}
	} else {
		if x.grad.layout != Plain {
			p := tp.plainOf(x.grad)
			tp.release(x.grad)
			p.gradFor = x
			x.grad = p
		}
		gp := tp.plainOf(g)
		addTo(x.grad.data, gp.data)
		tp.releaseTmp(gp, g)
	}
	if own {
		tp.release(g)
	}
}

// addGradPart accumulates g into the elements [off, off+len(g)) of x's
// gradient, zero elsewhere. The range must be a run of whole samples (axis
// 0), which is contiguous in every layout this package knows.
func (tp *Tape) addGradPart(x, g *Tensor, off int) {
	if !x.requiresGrad {
		return
	}
	if x.node == nil {
		if x.grad == nil {
			x.grad = &Tensor{shape: append([]int(nil), x.shape...), data: make([]float32, len(x.data))}
		}
		gp := tp.plainOf(g)
		addTo(x.grad.data[off:off+len(gp.data)], gp.data)
		tp.releaseTmp(gp, g)
		return
	}
	if x.grad == nil {
		z := tp.getZero(x.shape...)
		z.layout = g.layout
		z.gradFor = x
		x.grad = z
	}
	if x.grad.layout == g.layout {
		addTo(x.grad.data[off:off+len(g.data)], g.data)
		return
	}
	if x.grad.layout != Plain {
		p := tp.plainOf(x.grad)
		tp.release(x.grad)
		p.gradFor = x
		x.grad = p
	}
	gp := tp.plainOf(g)
	addTo(x.grad.data[off:off+len(gp.data)], gp.data)
	tp.releaseTmp(gp, g)
}

// Backward computes d(loss)/d(leaf) for every leaf with RequiresGrad that
// loss depends on, accumulating into leaf.Grad(). loss must have one element.
// Gradients of intermediate tensors are freed as soon as they are consumed,
// so only leaves have a Grad afterwards. Big intermediate tensors (arena
// buffers) are freed too, once every op that could read them has run; small
// ones such as the loss stay readable until Reset.
func (tp *Tape) Backward(loss *Tensor) {
	if loss == nil {
		panicf("Backward", "nil loss")
	}
	if len(loss.data) != 1 {
		panicf("Backward", "loss %v has %d elements, want 1", loss.shape, len(loss.data))
	}
	if !loss.requiresGrad {
		panicf("Backward", "loss %v does not depend on any tensor that requires grad", loss.shape)
	}
	tp.inBackward = true
	defer func() { tp.inBackward = false }()
	seed := tp.get(loss.shape...)
	seed.data[0] = 1
	tp.addGrad(loss, seed, true)
	for i := tp.nnodes - 1; i >= 0; i-- {
		n := tp.nodes[i]
		out := n.out
		if g := out.grad; g != nil {
			n.backward(g)
			out.grad = nil
			if g.gradFor == out {
				tp.release(g)
			}
		}
		// Every op that may read out (its producer's backward and its
		// consumers', recorded later) has now run: a big activation's
		// memory can hold the gradients still to come.
		if out.aoff != 0 {
			tp.dropData(out)
		}
	}
}

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
	y.outFree = true // conv backward reads x and w only
	if tp.rec(x, w, b) {
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
	y.outFree = !relu // the backward reads y only for a fused ReLU's mask
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
	if tp.rec(x, gamma, beta) {
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
	if tp.rec(x, nil, nil) {
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
	y.outFree = !relu
	if tp.recording(a, b, nil) { // reads y (for the ReLU) but neither input
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
	ap, bp := tp.sameLayout(a, b)
	y := tp.get(a.shape...)
	y.layout = ap.layout
	yd, bd := y.data, bp.data[:len(ap.data)]
	for i, v := range ap.data {
		yd[i] = v * bd[i]
	}
	tp.releaseTmp(ap, a)
	tp.releaseTmp(bp, b)
	if tp.rec(a, b, nil) {
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
	gp, op := tp.sameLayout(g, other)
	d := tp.get(x.shape...)
	d.layout = gp.layout
	dd, od := d.data, op.data[:len(gp.data)]
	for i, v := range gp.data {
		dd[i] = v * od[i]
	}
	tp.releaseTmp(gp, g)
	tp.releaseTmp(op, other)
	tp.addGrad(x, d, true)
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
	if tp.rec(x, nil, nil) {
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
	if tp.rec(x, nil, nil) {
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
	if tp.rec(x, nil, nil) {
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
	if tp.rec(x, w, b) {
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
	if tp.rec(a, b, nil) {
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

// Reshape returns x with a new shape of the same size (Plain view). One
// dimension may be -1, inferred from the others.
func (tp *Tape) Reshape(x *Tensor, shape ...int) *Tensor {
	const op = "Reshape"
	if x == nil {
		panicf(op, "x is nil")
	}
	n, infer := 1, -1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d <= 0:
			panicf(op, "x %v to %v: bad dimension %d", x.shape, shape, d)
		default:
			n *= d
		}
	}
	ns := shape
	if infer >= 0 {
		if len(x.data)%n != 0 {
			panicf(op, "x %v to %v: size %d is not a multiple of %d", x.shape, shape, len(x.data), n)
		}
		ns = append(make([]int, 0, 8), shape...)
		ns[infer] = len(x.data) / n
		n *= ns[infer]
	}
	if n != len(x.data) {
		panicf(op, "x %v to %v: sizes differ (%d vs %d)", x.shape, shape, len(x.data), n)
	}
	if x.layout != Plain {
		x = tp.Plain(x)
	}
	y := tp.viewOf(x, ns)
	if tp.rec(x, nil, nil) {
		tp.record(y, func(g *Tensor) {
			if g.layout != Plain {
				p := tp.get(g.shape...)
				tp.b.ToPlain(p, g)
				g = p
			}
			// g is ours to hand on: addGrad reshapes it to x's shape.
			tp.addGrad(x, g, true)
		})
	}
	return y
}

// Plain returns x in Plain layout (x itself if already Plain).
func (tp *Tape) Plain(x *Tensor) *Tensor {
	if x == nil {
		panicf("Plain", "x is nil")
	}
	if x.layout == Plain {
		return x
	}
	y := tp.get(x.shape...)
	tp.b.ToPlain(y, x)
	if tp.rec(x, nil, nil) {
		tp.record(y, func(g *Tensor) { tp.addGrad(x, g, true) })
	}
	return y
}

// Concat joins tensors along axis 0; Split cuts x along axis 0 into parts of
// the given sizes. Axis 0 is outermost in every layout, so both keep their
// inputs' layout when the inputs agree.
func (tp *Tape) Concat(xs ...*Tensor) *Tensor {
	const op = "Concat"
	if len(xs) == 0 {
		panicf(op, "no inputs")
	}
	first := xs[0]
	if first == nil {
		panicf(op, "input 0 is nil")
	}
	n0, layout, need := 0, first.layout, false
	for i, x := range xs {
		if x == nil {
			panicf(op, "input %d is nil", i)
		}
		if len(x.shape) != len(first.shape) || !sameShape(x.shape[1:], first.shape[1:]) {
			panicf(op, "input 0 %v and input %d %v: shapes differ beyond axis 0", first.shape, i, x.shape)
		}
		n0 += x.shape[0]
		if x.layout != layout {
			layout = Plain
		}
		need = need || (x.requiresGrad && !tp.noGrad)
	}
	shape := append(append(make([]int, 0, 8), n0), first.shape[1:]...)
	y := tp.get(shape...)
	y.layout = layout
	off := 0
	for _, x := range xs {
		src := x
		if x.layout != layout {
			src = tp.plainOf(x)
		}
		off += copy(y.data[off:], src.data)
		tp.releaseTmp(src, x)
	}
	if need {
		ins := append([]*Tensor(nil), xs...)
		for _, x := range ins {
			x.saved = true
		}
		tp.record(y, func(g *Tensor) {
			off := 0
			for _, x := range ins {
				n := len(x.data)
				if x.requiresGrad {
					d := tp.get(x.shape...)
					copy(d.data, g.data[off:off+n])
					d.layout = g.layout
					tp.addGrad(x, d, true)
				}
				off += n
			}
		})
	}
	return y
}

// Split cuts x along axis 0 into parts of the given sizes (which must sum
// to x's first dimension).
func (tp *Tape) Split(x *Tensor, sizes ...int) []*Tensor {
	const op = "Split"
	if x == nil {
		panicf(op, "x is nil")
	}
	if len(x.shape) == 0 {
		panicf(op, "x %v has rank 0", x.shape)
	}
	total := 0
	for _, s := range sizes {
		if s <= 0 {
			panicf(op, "x %v: sizes %v must be positive", x.shape, sizes)
		}
		total += s
	}
	if len(sizes) == 0 || total != x.shape[0] {
		panicf(op, "x %v: sizes %v do not sum to %d", x.shape, sizes, x.shape[0])
	}
	row := len(x.data) / x.shape[0]
	outs := make([]*Tensor, len(sizes))
	shape := append(make([]int, 0, 8), x.shape...)
	off := 0
	rec := tp.rec(x, nil, nil)
	for i, s := range sizes {
		shape[0] = s
		y := tp.get(shape...)
		y.layout = x.layout
		copy(y.data, x.data[off:off+s*row])
		if rec {
			o := off
			tp.record(y, func(g *Tensor) { tp.addGradPart(x, g, o) })
		}
		outs[i] = y
		off += s * row
	}
	return outs
}

// rows2D checks that x is a 2-D tensor with at least one row and returns it
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
	if tp.rec(x, nil, nil) {
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
	if tp.rec(x, nil, nil) {
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
	rec := tp.rec(logits, nil, nil)
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
	y := tp.get(1)
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
	if tp.rec(x, nil, nil) {
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

// Custom records a hand-written op: out was computed from inputs by the
// caller (allocate it with tp.Alloc), and backward, given d(loss)/d(out),
// returns d(loss)/d(input) for each input (nil where none). Call Custom
// before out is used by any other op. backward may allocate its results with
// tp.Alloc and may return gradOut itself; the tape copies what it keeps.
func (tp *Tape) Custom(out *Tensor, inputs []*Tensor, backward func(gradOut *Tensor) []*Tensor) {
	const op = "Custom"
	if out == nil || backward == nil {
		panicf(op, "nil out or backward")
	}
	if out.node != nil {
		panicf(op, "out %v was already produced by a recorded op", out.shape)
	}
	need := false
	for i, x := range inputs {
		if x == nil {
			panicf(op, "input %d is nil", i)
		}
		need = need || x.requiresGrad
	}
	if !need || tp.noGrad {
		return
	}
	ins := append([]*Tensor(nil), inputs...)
	for _, x := range ins {
		x.saved = true
	}
	tp.record(out, func(g *Tensor) {
		grads := backward(g)
		if len(grads) != len(ins) {
			panicf(op, "backward returned %d gradients for %d inputs", len(grads), len(ins))
		}
		for i, d := range grads {
			if d == nil || !ins[i].requiresGrad {
				continue
			}
			if len(d.data) != len(ins[i].data) {
				panicf(op, "gradient %v for input %d %v has the wrong size", d.shape, i, ins[i].shape)
			}
			tp.addGrad(ins[i], d, false)
		}
	})
}

// Free returns tensors to the pool before Reset, for forward passes that
// know a tensor is dead (inference through a deep network keeps a few
// activations alive instead of all of them). With recording off
// (SetGrad(false)) it frees every tensor made by this tape's ops. With
// recording on it frees only those that no backward will read: not saved
// by a recorded op that consumed them (as a convolution saves its input; a
// residual add saves neither operand), and not read by their own producer's
// backward (a convolution's or a batch norm's output without fused ReLU).
// Leaves and views are left alone. A freed tensor has no data: do not use it
// again.
func (tp *Tape) Free(ts ...*Tensor) {
	for _, t := range ts {
		if t == nil || t.gradFor != nil {
			continue
		}
		if tp.noGrad {
			if t.node != nil || t.requiresGrad {
				continue
			}
		} else if t.saved || (t.node != nil && !t.outFree) {
			continue
		}
		tp.dropData(t)
	}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// dropData returns a pool tensor's storage to the pool under a fresh header,
// so that t itself (which closures or the caller may still hold) is never
// handed out again: t is left without data.
func (tp *Tape) dropData(t *Tensor) {
	if !t.pooled || !t.inUse || t.view {
		return
	}
	if t.aoff != 0 {
		tp.pool.freeArena(t)
		t.inUse = false
		return
	}
	nt := &Tensor{data: t.data, shape: make([]int, 0, 4), pooled: true}
	t.data, t.inUse = nil, false
	p := &tp.pool
	if p.free == nil {
		p.free = make(map[int][]*Tensor)
	}
	p.free[cap(nt.data)] = append(p.free[cap(nt.data)], nt)
}

// Alloc returns a zeroed Plain tensor from the tape's pool (freed by Reset).
func (tp *Tape) Alloc(shape ...int) *Tensor {
	checkShape("Alloc", shape)
	return tp.getZero(shape...)
}
