//go:build cgo && !purego

package dnnl

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/simclr-go/simclr/engine"
)

// dispatcher owns the one OS thread that makes every oneDNN call, and all
// state touched only from it: the plan cache and the workspace buffers.
// It is process-wide (one per OpenMP pool). What a backend chose lives in
// the backend (tune.go), so that SetTuning changes one backend only.
type dispatcher struct {
	mu   sync.Mutex // serialises callers: one kernel at a time
	req  chan func()
	done chan any // nil, or the panic value of the kernel

	blk   int // preferred channel block: 16, 8 or 0 (plain)
	nthr  int // OpenMP pool size, set by the last New
	plans map[pkey]*plan
	ws    map[uintptr]*wsBuf
	wsLen int    // bytes of all buffers in ws
	bnWS  []byte // throwaway ReLU mask of training batch norms (see BatchNorm)
	gen   uint64

	memops int // cMemopsMode: -1 choose, 0 parallel, 1 serial

	// shared holds the choices the process's timing backends made: a new
	// one starts from them (tune.go), so that within one process every
	// such backend runs a shape the same way, as before choices were kept
	// per backend.
	shared *tuning

	initErr error
}

var (
	startOnce sync.Once
	theDisp   *dispatcher
)

func start() *dispatcher {
	startOnce.Do(func() {
		d := &dispatcher{
			req:   make(chan func()),
			done:  make(chan any),
			plans: make(map[pkey]*plan),
			ws:    make(map[uintptr]*wsBuf),

			shared: newTuning(),
		}
		ready := make(chan error)
		go d.loop(ready)
		d.initErr = <-ready
		theDisp = d
	})
	return theDisp
}

func (d *dispatcher) loop(ready chan<- error) {
	// Never unlocked: this OS thread owns the OpenMP pool.
	runtime.LockOSThread()
	err := cInit(0)
	if err == nil {
		d.blk = cBlockSize()
	}
	ready <- err
	if err != nil {
		return
	}
	for f := range d.req {
		d.done <- run(f)
	}
}

func run(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

// do runs f on the oneDNN thread and waits for it; a panic in f is
// re-raised in the caller.
func (d *dispatcher) do(f func()) {
	d.mu.Lock()
	d.req <- f
	p := <-d.done
	d.mu.Unlock()
	if p != nil {
		panic(p)
	}
}

// Available reports whether oneDNN can be initialised in this process.
func Available() bool { return start().initErr == nil }

// maxThreads is the OpenMP pool size of the oneDNN thread.
func maxThreads() int {
	d := start()
	if d.initErr != nil {
		return 0
	}
	n := 0
	d.do(func() { n = cMaxThreads() })
	return n
}

// plan returns the cached plan for key k, building it with mk on first use.
func (d *dispatcher) plan(k pkey, name string, mk func() (*plan, error)) *plan {
	if p := d.plans[k]; p != nil {
		return p
	}
	p, err := mk()
	if err != nil {
		panic(fmt.Sprintf("dnnl: %s: %v", name, err))
	}
	d.plans[k] = p
	return p
}

func must(name string, err error) {
	if err != nil {
		panic(fmt.Sprintf("dnnl: %s: %v", name, err))
	}
}

// wsBuf is a workspace buffer (Go memory, passed to C only during a call).
// It is keyed by the forward output's storage, which the tape's pool reuses
// every step, so the steady state allocates none; gen tells whether the
// buffer still holds the mask of a given forward call.
type wsBuf struct {
	data []byte
	gen  uint64
}

// wsRef is the engine.Workspace of BatchNorm (fused ReLU) and MaxPool2D.
type wsRef struct {
	buf *wsBuf
	gen uint64
	lay engine.Layout // the forward input's layout
}

func (r *wsRef) valid(size int) bool {
	return r != nil && r.buf.gen == r.gen && len(r.buf.data) == size
}

func (d *dispatcher) wsFor(y *engine.Tensor, size int, lay engine.Layout) *wsRef {
	key := uintptr(ptr(y))
	wb := d.ws[key]
	if wb == nil || len(wb.data) != size {
		if wb != nil {
			d.wsLen -= len(wb.data)
		}
		if len(d.ws) >= 4096 {
			// Callers without a buffer pool: drop the index; live
			// workspaces keep their own buffers.
			clear(d.ws)
			d.wsLen = 0
		}
		wb = &wsBuf{data: make([]byte, size)}
		d.ws[key] = wb
		d.wsLen += size
	}
	d.gen++
	wb.gen = d.gen
	return &wsRef{buf: wb, gen: d.gen, lay: lay}
}

// bnKeepBytes bounds the batch-norm ReLU masks kept for backward passes.
var bnKeepBytes = 64 << 20

func ptr(t *engine.Tensor) unsafe.Pointer {
	if t == nil {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(t.Raw()))
}

func layCode(l engine.Layout) int {
	switch l {
	case engine.Blocked16:
		return 16
	case engine.Blocked8:
		return 8
	}
	return 0
}

// blocked is the layout this backend gives a 4-D output with c channels.
func (d *dispatcher) blocked(c int) engine.Layout {
	switch {
	case d.blk == 16 && c%16 == 0:
		return engine.Blocked16
	case d.blk == 8 && c%8 == 0:
		return engine.Blocked8
	}
	return engine.Plain
}
