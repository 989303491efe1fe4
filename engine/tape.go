package engine

import (
	"fmt"
	"slices"
)

// This file is the tape's machinery: recording ops (begin, record, Custom),
// the backward pass with its gradient accumulation, and early freeing.

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
	bnSync     BNSync // global batch norm over processes (bn_global.go); nil: local
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

func checkSame(op string, a, b *Tensor) {
	if a == nil || b == nil {
		panicf(op, "nil operand")
	}
	if !slices.Equal(a.shape, b.shape) {
		panicf(op, "a %v and b %v: shapes differ", a.shape, b.shape)
	}
}

// life says what an op's backward reads. The tape keeps a tensor's storage
// while a recorded backward may read it; Free and AddReLUInPlace consult
// these flags (Tensor.saved, Tensor.outFree) to know what they may reuse.
type life uint8

const (
	// readsIn: the backward may read the op's inputs. When the op is
	// recorded they are marked saved, and Free leaves them alone. Ops
	// whose backward reads only their output, or nothing (ReLU, Scale,
	// Reshape, the row ops), declare it too: declaring less would let Free
	// return their inputs early, a change to make on purpose, with tests.
	readsIn life = 1 << iota
	// outFree: the backward never reads the op's output, so Free may
	// return it and AddReLUInPlace may overwrite it once it is dead. Ops
	// that do not declare it keep their output until Reset.
	outFree
)

// begin is the first half of recording an op, called once its output out
// exists: it sets the lifetime flags that l declares on out and on the
// inputs (nil ones are skipped) and reports whether the op must be
// recorded, that is whether gradients are on and some input requires one.
// If so, the op passes its backward to record. Every op goes through begin,
// so no op sets lifetime flags by hand.
func (tp *Tape) begin(out *Tensor, l life, ins ...*Tensor) bool {
	out.outFree = l&outFree != 0
	if tp.noGrad {
		return false
	}
	need := false
	for _, t := range ins {
		if t != nil && t.requiresGrad {
			need = true
			break
		}
	}
	if need && l&readsIn != 0 {
		for _, t := range ins {
			if t != nil {
				t.saved = true
			}
		}
	}
	return need
}

// record is the second half: it makes backward the node that produced out.
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
			tp.addGradPlain(x, g, 0)
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
		if slices.Equal(x.grad.shape, g.shape) {
			// The backend's add is vectorised and threaded; these are
			// activation-sized (the residual branches' gradients).
			tp.b.Add(x.grad, x.grad, g, false)
		} else {
			addTo(x.grad.data, g.data)
		}
	} else {
		tp.addGradPlain(x, g, 0)
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
		tp.addGradPlain(x, g, off)
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
	tp.addGradPlain(x, g, off)
}

// addGradPlain adds g into x's existing gradient from element off on, in
// Plain layout: it makes the gradient Plain first (an intermediate's is
// exclusively x's, so it is replaced) and reads g through a Plain copy if
// needed.
func (tp *Tape) addGradPlain(x, g *Tensor, off int) {
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
	for i, x := range inputs {
		if x == nil {
			panicf(op, "input %d is nil", i)
		}
	}
	if !tp.begin(out, readsIn, inputs...) {
		return
	}
	ins := append([]*Tensor(nil), inputs...)
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
