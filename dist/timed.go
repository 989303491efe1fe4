package dist

import "time"

// Timed wraps a Comm and adds up the wall time spent in its collectives
// (waiting for the slowest rank included), for `simclr bench` and the
// per-step metrics.
type Timed struct {
	Comm
	Total time.Duration // time inside collectives so far
	Calls int
}

// NewTimed returns c with timing.
func NewTimed(c Comm) *Timed { return &Timed{Comm: c} }

func (t *Timed) time(f func()) {
	s := time.Now()
	f()
	t.Total += time.Since(s)
	t.Calls++
}

func (t *Timed) AllreduceF32(buf []float32) { t.time(func() { t.Comm.AllreduceF32(buf) }) }
func (t *Timed) AllreduceF64(buf []float64) { t.time(func() { t.Comm.AllreduceF64(buf) }) }
func (t *Timed) AllgatherF32(send, recv []float32) {
	t.time(func() { t.Comm.AllgatherF32(send, recv) })
}
func (t *Timed) AllgatherF64(send, recv []float64) {
	t.time(func() { t.Comm.AllgatherF64(send, recv) })
}
func (t *Timed) AllgatherBytes(send, recv []byte) {
	t.time(func() { t.Comm.AllgatherBytes(send, recv) })
}
func (t *Timed) BcastF32(buf []float32, root int) { t.time(func() { t.Comm.BcastF32(buf, root) }) }
func (t *Timed) BcastBytes(buf []byte, root int)  { t.time(func() { t.Comm.BcastBytes(buf, root) }) }
func (t *Timed) Barrier()                         { t.time(t.Comm.Barrier) }
