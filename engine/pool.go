package engine

// The pool recycles the tensors a Tape creates. Free buffers are kept per
// element count; Reset returns everything handed out since the previous
// Reset. Within a Backward pass the gradient of an intermediate tensor is
// returned early, as soon as the op that consumed it has run, so the grads of
// a deep network do not all live at once.

// PoolStats describe what a tape's pool has allocated over its lifetime.
type PoolStats struct {
	Tensors int   // Go-memory buffers allocated (each is reused after Reset)
	Floats  int64 // their total number of float32 elements, plus ArenaFloats
	InUse   int   // buffers handed out since the last Reset and not yet returned
	// ArenaFloats is the high-water mark of the big-buffer arena (see
	// arena.go): the float32 elements of it ever written.
	ArenaFloats int64
}

type pool struct {
	free  map[int][]*Tensor // by capacity (element count of the allocation)
	big   int               // the largest element count asked for so far
	views []*Tensor         // spare view headers (no data of their own)
	arena arena             // big buffers, where the system allows
	ahdrs []*Tensor         // spare headers for arena blocks
	used  []*Tensor         // handed out since Reset; may hold stale duplicates
	stats PoolStats
}

// PoolStats reports the pool's size; a steady training loop stops growing it
// after its first step.
func (tp *Tape) PoolStats() PoolStats {
	s := tp.pool.stats
	s.ArenaFloats = int64(tp.pool.arena.top)
	s.Floats += s.ArenaFloats
	for _, t := range tp.pool.used {
		if t.inUse && !t.view {
			s.InUse++
		}
	}
	return s
}

// get returns a pool tensor of the given shape with undefined contents,
// Plain layout and no autodiff state.
func (tp *Tape) get(shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	p := &tp.pool
	if n >= bigBuf {
		if t := tp.getArena(shape, n); t != nil {
			return t
		}
	}
	p.big = max(p.big, n)
	var t *Tensor
	c := n
	if len(p.free[n]) == 0 && n >= bigBuf {
		// Best fit among larger free buffers (see Backward's capacity).
		c = 0
		for k, l := range p.free {
			if k > n && len(l) > 0 && (c == 0 || k < c) {
				c = k
			}
		}
		if c == 0 {
			c = n
		}
	}
	if l := p.free[c]; len(l) > 0 {
		t = l[len(l)-1]
		l[len(l)-1] = nil
		p.free[c] = l[:len(l)-1]
		t.data = t.data[:n]
	} else {
		c = n
		if tp.inBackward && n >= bigBuf {
			// Gradient buffers are short-lived and their sizes grow as
			// Backward walks from the last layer to the first. Giving each
			// the capacity of the largest tensor lets the first layer's
			// gradients reuse the last layer's buffers; pages beyond what
			// a buffer has used are never touched, so they cost no memory.
			c = max(n, p.big)
		}
		t = &Tensor{data: make([]float32, n, c), shape: make([]int, 0, 4), pooled: true}
		p.stats.Tensors++
		p.stats.Floats += int64(c)
	}
	t.shape = append(t.shape[:0], shape...)
	t.layout = Plain
	t.inUse = true
	t.outFree = false
	t.saved = false
	p.used = append(p.used, t)
	return t
}

// getArena is get for a buffer from the arena; nil if it has no room.
func (tp *Tape) getArena(shape []int, n int) *Tensor {
	p := &tp.pool
	off, ok := p.arena.alloc(n)
	if !ok {
		return nil
	}
	var t *Tensor
	if k := len(p.ahdrs); k > 0 {
		t = p.ahdrs[k-1]
		p.ahdrs[k-1] = nil
		p.ahdrs = p.ahdrs[:k-1]
	} else {
		t = &Tensor{shape: make([]int, 0, 4), pooled: true}
	}
	t.data = p.arena.mem[off : off+n : off+n]
	t.aoff = off + 1
	t.shape = append(t.shape[:0], shape...)
	t.layout = Plain
	t.inUse = true
	t.outFree = false
	t.saved = false
	p.used = append(p.used, t)
	return t
}

// freeArena returns t's arena block, leaving t without data.
func (p *pool) freeArena(t *Tensor) {
	p.arena.release(t.aoff-1, cap(t.data))
	t.aoff = 0
	t.data = nil
}

// getZero is get with the data cleared.
func (tp *Tape) getZero(shape ...int) *Tensor {
	t := tp.get(shape...)
	clear(t.data)
	return t
}

// viewOf returns a Plain tensor header of the given shape sharing x's data.
func (tp *Tape) viewOf(x *Tensor, shape []int) *Tensor {
	p := &tp.pool
	var t *Tensor
	if k := len(p.views); k > 0 {
		t = p.views[k-1]
		p.views[k-1] = nil
		p.views = p.views[:k-1]
	} else {
		t = &Tensor{view: true, shape: make([]int, 0, 4)}
	}
	t.shape = append(t.shape[:0], shape...)
	t.data = x.data
	x.saved = true // its storage is shared now: Free must leave it alone
	t.layout = Plain
	t.inUse = true
	t.outFree = false
	t.saved = false
	p.used = append(p.used, t)
	return t
}

// release returns t to the pool now. It is a no-op for tensors that are not
// pool buffers or were already returned.
func (tp *Tape) release(t *Tensor) {
	if !t.inUse || t.view || !t.pooled {
		return
	}
	tp.putBack(t)
}

func (tp *Tape) putBack(t *Tensor) {
	t.inUse = false
	t.requiresGrad = false
	t.grad = nil
	t.node = nil
	t.gradFor = nil
	p := &tp.pool
	if t.view {
		t.data = nil
		p.views = append(p.views, t)
		return
	}
	if t.aoff != 0 {
		p.freeArena(t)
		p.ahdrs = append(p.ahdrs, t)
		return
	}
	if p.free == nil {
		p.free = make(map[int][]*Tensor)
	}
	n := cap(t.data)
	p.free[n] = append(p.free[n], t)
}

// bigBuf is the element count from which buffers of different sizes may be
// shared (small ones are many and cheap).
const bigBuf = 1 << 16

// Reset forgets the recorded graph and returns every tensor created by ops
// since the last Reset to the pool. Tensors from before are invalid after it.
func (tp *Tape) Reset() {
	p := &tp.pool
	for i, t := range p.used {
		if t.inUse {
			tp.putBack(t)
		}
		p.used[i] = nil
	}
	p.used = p.used[:0]
	for i := range tp.nnodes {
		n := tp.nodes[i]
		n.out = nil
		n.backward = nil
	}
	tp.nnodes = 0
}
