package dist

import (
	"fmt"
	"sync"
)

// AbortError is the panic value of InProc ranks after one of them called
// Abort (a real job's ranks would all have exited).
type AbortError struct {
	Rank, Code int
	Msg        string
}

func (e *AbortError) Error() string {
	return fmt.Sprintf("dist: rank %d aborted the job (code %d): %s", e.Rank, e.Code, e.Msg)
}

// InProc returns the communicators of n simulated ranks that live in this
// process, for tests: run each rank's code on its own goroutine. Reductions
// add the ranks' contributions in rank order (float64 accumulation for
// float32 sums), so results are the same on every rank and every run.
func InProc(n int) []Comm {
	if n < 1 {
		panic(fmt.Sprintf("dist: InProc: %d ranks, want >= 1", n))
	}
	g := &group{n: n, slots: make([]any, n)}
	g.cond = sync.NewCond(&g.mu)
	cs := make([]Comm, n)
	for r := range cs {
		cs[r] = &inproc{g: g, rank: r}
	}
	return cs
}

// group is the shared state of InProc ranks: each collective is a
// deposit-then-read exchange between two barrier phases.
type group struct {
	n       int
	mu      sync.Mutex
	cond    *sync.Cond
	slots   []any
	arrived int
	gen     uint64
	abort   *AbortError
}

type inproc struct {
	g      *group
	rank   int
	closed bool
}

// barrier blocks until every rank has reached it, or panics if the job was
// aborted.
func (g *group) barrier() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.abort != nil {
		panic(g.abort)
	}
	gen := g.gen
	g.arrived++
	if g.arrived == g.n {
		g.arrived = 0
		g.gen++
		g.cond.Broadcast()
		return
	}
	for gen == g.gen && g.abort == nil {
		g.cond.Wait()
	}
	if g.abort != nil {
		panic(g.abort)
	}
}

// exchange deposits v, waits for every rank, calls read with all deposits
// (in rank order), and waits again so that no deposit is overwritten while
// another rank still reads it.
func (c *inproc) exchange(v any, read func(all []any)) {
	if c.closed {
		panic(fmt.Sprintf("dist: rank %d: collective after Close", c.rank))
	}
	g := c.g
	g.mu.Lock()
	g.slots[c.rank] = v
	g.mu.Unlock()
	g.barrier()
	read(g.slots)
	g.barrier()
}

func (c *inproc) Rank() int { return c.rank }
func (c *inproc) Size() int { return c.g.n }

func sameLen[T any](op string, all []any, n int) {
	for r, v := range all {
		if len(v.([]T)) != n {
			panic(fmt.Sprintf("dist: %s: rank %d passed %d elements, another %d", op, r, len(v.([]T)), n))
		}
	}
}

// allreduce sums in float64 over the ranks in rank order, so every rank gets
// the same bits whatever the order the goroutines arrive in.
func allreduce[T float32 | float64](c *inproc, buf []T, op string) {
	out := make([]T, len(buf))
	c.exchange(buf, func(all []any) {
		sameLen[T](op, all, len(buf))
		for i := range out {
			var s float64
			for _, v := range all {
				s += float64(v.([]T)[i])
			}
			out[i] = T(s)
		}
	})
	copy(buf, out)
}

func (c *inproc) AllreduceF32(buf []float32) { allreduce(c, buf, "AllreduceF32") }
func (c *inproc) AllreduceF64(buf []float64) { allreduce(c, buf, "AllreduceF64") }

func gather[T any](c *inproc, send, recv []T) {
	checkGather(len(send), len(recv), c.g.n, send)
	c.exchange(send, func(all []any) {
		sameLen[T]("Allgather", all, len(send))
		for r, v := range all {
			copy(recv[r*len(send):], v.([]T))
		}
	})
}

func (c *inproc) AllgatherF32(send, recv []float32) { gather(c, send, recv) }
func (c *inproc) AllgatherF64(send, recv []float64) { gather(c, send, recv) }
func (c *inproc) AllgatherBytes(send, recv []byte)  { gather(c, send, recv) }

func bcast[T any](c *inproc, buf []T, root int) {
	if root < 0 || root >= c.g.n {
		panic(fmt.Sprintf("dist: Bcast: root %d outside [0,%d)", root, c.g.n))
	}
	c.exchange(buf, func(all []any) {
		sameLen[T]("Bcast", all, len(buf))
		if c.rank != root {
			copy(buf, all[root].([]T))
		}
	})
}

func (c *inproc) BcastF32(buf []float32, root int) { bcast(c, buf, root) }
func (c *inproc) BcastBytes(buf []byte, root int)  { bcast(c, buf, root) }
func (c *inproc) Barrier()                         { c.exchange(nil, func([]any) {}) }

// Abort wakes every rank blocked in a collective; they, and this rank,
// panic with *AbortError.
func (c *inproc) Abort(code int, msg string) {
	g := c.g
	g.mu.Lock()
	if g.abort == nil {
		g.abort = &AbortError{Rank: c.rank, Code: code, Msg: msg}
	}
	e := g.abort
	g.cond.Broadcast()
	g.mu.Unlock()
	panic(e)
}

func (c *inproc) Close() error {
	c.closed = true
	return nil
}
