package engine

import (
	"cmp"
	"slices"
)

// The arena holds a tape's big buffers (bigBuf elements and up) in one
// reserved range of address space, placed best-fit and coalesced when freed.
// Backward frees activations as soon as no remaining op can read them, and
// because neighbours merge, the dead activations of the deep, small layers
// become room for the gradients of the wide, shallow ones: memory tracks the
// bytes alive at each moment, as with malloc/free, yet nothing is returned
// to the OS or faulted in again, so a steady loop touches the same pages
// every step. Without a reservation (other systems, or mmap refused) the
// pool falls back to Go memory per buffer.

const (
	arenaAlign  = 1024     // floats: blocks start on 4 KiB page boundaries
	arenaCommit = 16 << 20 // floats (64 MiB): read-write growth step
)

type span struct{ off, n int } // in floats

type arena struct {
	mem   []float32 // the reservation; nil when unavailable
	rw    int       // mem[:rw] is read-write
	top   int       // high-water mark: every block handed out lay below it
	free  []span    // free runs sorted by off, never adjacent
	tried bool
}

// alloc returns the offset of a block of n floats (rounded up to whole
// pages), or false when the arena cannot serve it.
func (a *arena) alloc(n int) (int, bool) {
	if a.mem == nil {
		if a.tried {
			return 0, false
		}
		a.tried = true
		if a.mem = reserveArena(); a.mem == nil {
			return 0, false
		}
		a.free = []span{{0, len(a.mem)}}
	}
	n = alignUp(n, arenaAlign)
	best := -1
	for i, s := range a.free {
		if s.n >= n && (best < 0 || s.n < a.free[best].n) {
			best = i
		}
	}
	if best < 0 {
		return 0, false
	}
	off := a.free[best].off
	end := off + n
	if end > a.rw {
		rw := min(alignUp(end, arenaCommit), len(a.mem))
		if !commitArena(a.mem, a.rw, rw) {
			return 0, false
		}
		a.rw = rw
	}
	if a.free[best].n == n {
		a.free = slices.Delete(a.free, best, best+1)
	} else {
		a.free[best].off += n
		a.free[best].n -= n
	}
	a.top = max(a.top, end)
	return off, true
}

// release frees the block of n floats at off that alloc returned.
func (a *arena) release(off, n int) {
	n = alignUp(n, arenaAlign)
	i, _ := slices.BinarySearchFunc(a.free, off, func(s span, off int) int { return cmp.Compare(s.off, off) })
	prev := i > 0 && a.free[i-1].off+a.free[i-1].n == off
	next := i < len(a.free) && off+n == a.free[i].off
	switch {
	case prev && next:
		a.free[i-1].n += n + a.free[i].n
		a.free = slices.Delete(a.free, i, i+1)
	case prev:
		a.free[i-1].n += n
	case next:
		a.free[i].off = off
		a.free[i].n += n
	default:
		a.free = slices.Insert(a.free, i, span{off, n})
	}
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }
