//go:build cgo && !purego

package dnnl

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/simclr-go/simclr/engine"
)

// Convolution algorithm modes (SIMCLR_CONV_ALGO).
const (
	algoAuto = iota
	algoDirect
	algoWinograd
	algoFixed // Options.Deterministic: fixedConvAlgo
)

// dispatcher owns the one OS thread that makes every oneDNN call, and all
// state touched only from it: the plan cache and the workspace buffers.
type dispatcher struct {
	mu   sync.Mutex // serialises callers: one kernel at a time
	req  chan func()
	done chan any // nil, or the panic value of the kernel

	blk   int // preferred channel block: 16, 8 or 0 (plain)
	plans map[pkey]*plan
	ws    map[uintptr]*wsBuf
	wsLen int    // bytes of all buffers in ws
	bnWS  []byte // throwaway ReLU mask of training batch norms (see BatchNorm)
	gen   uint64

	memops  int                // cMemopsMode: -1 choose by time, 0 parallel, 1 serial
	bnModes map[pkey]*modeStat // per batch-norm plan (key without the mode bit)

	initErr error
}

var (
	startOnce sync.Once
	theDisp   *dispatcher
)

func start() *dispatcher {
	startOnce.Do(func() {
		d := &dispatcher{
			req:     make(chan func()),
			done:    make(chan any),
			plans:   make(map[pkey]*plan),
			ws:      make(map[uintptr]*wsBuf),
			bnModes: make(map[pkey]*modeStat),
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

// Options configure a backend made by NewWithOptions.
type Options struct {
	// Threads is the OpenMP pool size; <= 0 uses every core. The pool is
	// process-wide: the last backend created decides its size.
	Threads int
	// Deterministic chooses every kernel by a fixed rule (fixedConvAlgo,
	// batch norm on the whole pool) instead of by timing, so that two
	// processes with the same Threads compute the same bits. A
	// SIMCLR_CONV_ALGO or SIMCLR_DNNL_SERIAL_MEMOPS setting still wins.
	Deterministic bool
}

// New returns the oneDNN backend with threads compute threads (<= 0: every
// core) and kernels chosen by timing.
func New(threads int) (engine.Backend, error) { return NewWithOptions(Options{Threads: threads}) }

// NewWithOptions returns the oneDNN backend configured by o.
func NewWithOptions(o Options) (engine.Backend, error) {
	threads := o.Threads
	algo := algoAuto
	switch v := os.Getenv("SIMCLR_CONV_ALGO"); v {
	case "", "auto":
	case "direct":
		algo = algoDirect
	case "winograd":
		algo = algoWinograd
	default:
		return nil, fmt.Errorf("dnnl: SIMCLR_CONV_ALGO=%q: want direct, winograd or auto", v)
	}
	d := start()
	if d.initErr != nil {
		return nil, fmt.Errorf("dnnl: %w", d.initErr)
	}
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var err error
	d.do(func() {
		if err = cInit(threads); err == nil {
			d.memops = cMemopsMode()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("dnnl: %w", err)
	}
	if o.Deterministic && algo == algoAuto {
		algo = algoFixed
	}
	return &backend{d: d, algo: algo, det: o.Deterministic}, nil
}

type backend struct {
	d    *dispatcher
	algo int
	det  bool // Options.Deterministic
}

func (b *backend) Name() string { return "dnnl" }

func (b *backend) Caps() engine.Caps { return engine.Caps{Tuned: true} }

// pkey identifies a plan: op, variant, layouts, flags and dimensions.
type pkey struct {
	op, kind uint8
	l1, l2   int8
	flags    uint8
	eps      float32
	d        [13]int64
}

const (
	opConv uint8 = iota + 1
	opBN
	opElt
	opPool
)

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

func need4(op, name string, t *engine.Tensor) {
	if t == nil || len(t.Shape()) != 4 {
		panic(fmt.Sprintf("dnnl: %s: %s %v is not 4-D", op, name, shapeOf(t)))
	}
}

func shapeOf(t *engine.Tensor) []int {
	if t == nil {
		return nil
	}
	return t.Shape()
}

func needShape(op, name string, t *engine.Tensor, shape ...int) {
	if t == nil || !slices.Equal(t.Shape(), shape) {
		panic(fmt.Sprintf("dnnl: %s: %s is %v, want %v", op, name, shapeOf(t), shape))
	}
}

// convDims checks a convolution's shapes and returns N C H W O KH KW OH OW
// SH SW PH PW.
func convDims(op string, x, w, y *engine.Tensor, p engine.ConvParams) [13]int64 {
	need4(op, "x", x)
	need4(op, "w", w)
	n, c, h, wd := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	o, kh, kw := w.Dim(0), w.Dim(2), w.Dim(3)
	if w.Dim(1) != c {
		panic(fmt.Sprintf("dnnl: %s: x %v and w %v: channels differ", op, x.Shape(), w.Shape()))
	}
	if p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 {
		panic(fmt.Sprintf("dnnl: %s: bad params %+v", op, p))
	}
	oh := (h+2*p.PadH-kh)/p.StrideH + 1
	ow := (wd+2*p.PadW-kw)/p.StrideW + 1
	if oh < 1 || ow < 1 {
		panic(fmt.Sprintf("dnnl: %s: x %v too small for w %v with %+v", op, x.Shape(), w.Shape(), p))
	}
	needShape(op, "output", y, n, o, oh, ow)
	return [13]int64{int64(n), int64(c), int64(h), int64(wd), int64(o), int64(kh), int64(kw),
		int64(oh), int64(ow), int64(p.StrideH), int64(p.StrideW), int64(p.PadH), int64(p.PadW)}
}

// conv runs a convolution plan, creating it (and choosing its algorithm) on
// first use.
func (b *backend) conv(kind int, dm *[13]int64, xl, yl int, bias bool, h *handles) {
	d := b.d
	k := b.convKey(kind, dm, xl, yl, bias)
	p := d.plans[k]
	if p == nil {
		p = b.chooseConv(kind, dm, xl, yl, bias, h)
		d.plans[k] = p
	}
	must("convolution", p.exec(h))
}

func (b *backend) convKey(kind int, dm *[13]int64, xl, yl int, bias bool) pkey {
	k := pkey{op: opConv, kind: uint8(kind), l1: int8(xl), l2: int8(yl), d: *dm}
	if bias {
		k.flags = 1
	}
	k.flags |= uint8(b.algo) << 1
	return k
}

// convTuneMinFLOP is the smallest convolution (FLOPs per call) for which
// auto mode times the engine's own Winograd kernel against oneDNN's: below
// it the choice is worth less than the timing.
var convTuneMinFLOP = 2e8

// convTuneFLOP sets the batch prefix the engine's Winograd kernel is timed
// on (every layout here keeps the batch outermost): enough images for about
// this much work and for full tile chunks (winoTuneBatch), so that per-call
// costs do not decide, but not the whole batch, which for a big network
// would add a minute to the first step.
const convTuneFLOP = 1.5e9

// chooseConv builds the plan to use for a convolution. Candidates: oneDNN's
// direct kernel; oneDNN's Winograd for 3x3 stride-1 shapes where it has one
// (AVX-512); the engine's F(2x2,3x3) Winograd (wino.h) where oneDNN has
// none and the shape allows it. Auto mode times them on the caller's
// buffers (which the final run overwrites) and keeps the fastest;
// SIMCLR_CONV_ALGO=direct or winograd forces a family.
func (b *backend) chooseConv(kind int, dm *[13]int64, xl, yl int, bias bool, h *handles) *plan {
	direct, err := newConvPlan(kind, false, dm, xl, yl, bias)
	if b.algo == algoDirect || dm[5] != 3 || dm[6] != 3 || dm[9] != 1 || dm[10] != 1 {
		must("convolution", err)
		return direct
	}
	if b.algo == algoFixed {
		if err == nil && !fixedConvWino(dm) {
			return direct
		}
		own, oerr := newWinoPlan(kind, dm, xl, yl, bias)
		if oerr != nil {
			must("convolution", err)
			return direct
		}
		if direct != nil {
			direct.free()
		}
		return own
	}
	wino, werr := newConvPlan(kind, true, dm, xl, yl, bias)
	if werr != nil { // not in oneDNN for this CPU or shape: try the engine's own
		if b.algo == algoAuto && convFLOP(dm) < convTuneMinFLOP {
			must("convolution", err)
			return direct
		}
		return b.chooseOwnWino(kind, dm, xl, yl, bias, h, direct, err)
	}
	switch {
	case err != nil || b.algo == algoWinograd:
		if direct != nil {
			direct.free()
		}
		return wino
	}
	if timePlan(wino, h) < timePlan(direct, h) {
		direct.free()
		return wino
	}
	wino.free()
	return direct
}

// chooseOwnWino decides between the direct plan (or its error) and the
// engine's Winograd kernel, timed on a prefix of the batch (convTuneFLOP).
func (b *backend) chooseOwnWino(kind int, dm *[13]int64, xl, yl int, bias bool, h *handles, direct *plan, derr error) *plan {
	own, oerr := newWinoPlan(kind, dm, xl, yl, bias)
	if oerr != nil {
		must("convolution", derr)
		return direct
	}
	if derr != nil || b.algo == algoWinograd {
		if direct != nil {
			direct.free()
		}
		return own
	}
	tdm := *dm
	perImage := convFLOP(dm) / float64(dm[0])
	tdm[0] = min(tdm[0], max(8, int64(convTuneFLOP/perImage), winoTuneBatch(dm)))
	td, to := direct, own
	if tdm[0] < dm[0] { // time plans for the prefix
		var err1, err2 error
		td, err1 = newConvPlan(kind, false, &tdm, xl, yl, bias)
		to, err2 = newWinoPlan(kind, &tdm, xl, yl, bias)
		must("convolution", err1)
		must("convolution", err2)
		defer td.free()
		defer to.free()
	}
	if clearlyFaster(to, td, h) {
		direct.free()
		return own
	}
	own.free()
	return direct
}

// fixedConvWino is the rule that replaces timing in deterministic mode for
// a 3x3 stride-1 convolution with dims dm: the engine's Winograd kernel
// (where it can run: AVX2, 8-channel blocks) for calls worth at least
// convTuneMinFLOP with 32 or more channels on both sides, which is what
// timing chose on the 2-core AVX2 box for ResNet-18 at widths 1/4 and 1;
// oneDNN's direct kernel otherwise. oneDNN's own Winograd (AVX-512) is
// never chosen by rule: its error bound is looser (see the package doc).
func fixedConvWino(dm *[13]int64) bool {
	return convFLOP(dm) >= convTuneMinFLOP && min(dm[1], dm[4]) >= 32
}

// clearlyFaster times plans a and b alternately (after a warm-up run of
// each, so that a change of machine load hits both) and reports whether a's
// best time beats b's by 5%: near-ties keep oneDNN's kernel.
func clearlyFaster(a, b *plan, h *handles) bool {
	must("convolution", a.exec(h))
	must("convolution", b.exec(h))
	ta, tb := time.Duration(1<<63-1), time.Duration(1<<63-1)
	for range 3 {
		t := time.Now()
		must("convolution", a.exec(h))
		ta = min(ta, time.Since(t))
		t = time.Now()
		must("convolution", b.exec(h))
		tb = min(tb, time.Since(t))
	}
	return float64(ta) < 0.95*float64(tb)
}

// convFLOP is the multiply-add count x2 of a convolution with dims dm.
func convFLOP(dm *[13]int64) float64 {
	return 2 * float64(dm[0]*dm[4]*dm[1]*dm[5]*dm[6]*dm[7]*dm[8])
}

func timePlan(p *plan, h *handles) time.Duration {
	must("convolution", p.exec(h)) // warm-up
	best := time.Duration(1<<63 - 1)
	for range 2 {
		t := time.Now()
		must("convolution", p.exec(h))
		best = min(best, time.Since(t))
	}
	return best
}

func (b *backend) Conv2D(y, x, w, bias *engine.Tensor, p engine.ConvParams) {
	dm := convDims("Conv2D", x, w, y, p)
	if bias != nil {
		needShape("Conv2D", "bias", bias, int(dm[4]))
	}
	yl := b.d.blocked(int(dm[4]))
	b.d.do(func() {
		b.conv(0, &dm, layCode(x.Layout()), layCode(yl), bias != nil, &handles{ptr(x), ptr(w), ptr(bias), ptr(y)})
	})
	y.SetLayout(yl)
}

func (b *backend) Conv2DBackwardData(dx, dy, w *engine.Tensor, p engine.ConvParams) {
	dm := convDims("Conv2DBackwardData", dx, w, dy, p)
	xl := b.d.blocked(int(dm[1]))
	b.d.do(func() {
		b.conv(1, &dm, layCode(xl), layCode(dy.Layout()), false, &handles{ptr(dy), ptr(w), ptr(dx)})
	})
	dx.SetLayout(xl)
}

func (b *backend) Conv2DBackwardWeights(dw, db, x, dy *engine.Tensor, p engine.ConvParams) {
	dm := convDims("Conv2DBackwardWeights", x, dw, dy, p)
	if dw.Layout() != engine.Plain {
		panic(fmt.Sprintf("dnnl: Conv2DBackwardWeights: dw %v is not Plain", dw.Shape()))
	}
	if db != nil {
		needShape("Conv2DBackwardWeights", "db", db, int(dm[4]))
	}
	b.d.do(func() {
		b.conv(2, &dm, layCode(x.Layout()), layCode(dy.Layout()), db != nil, &handles{ptr(x), ptr(dy), ptr(dw), ptr(db)})
	})
}

// bnDims checks a batch norm's shapes; x is [N,C] or [N,C,H,W].
func bnDims(op string, x *engine.Tensor, vecs ...*engine.Tensor) ([4]int64, int) {
	s := x.Shape()
	if len(s) != 2 && len(s) != 4 {
		panic(fmt.Sprintf("dnnl: %s: x %v is neither [N,C] nor [N,C,H,W]", op, s))
	}
	var dims [4]int64
	for i, v := range s {
		dims[i] = int64(v)
	}
	for _, v := range vecs {
		if v == nil || v.Len() != s[1] {
			panic(fmt.Sprintf("dnnl: %s: x %v needs per-channel tensors of %d values, got %v", op, s, s[1], shapeOf(v)))
		}
	}
	return dims, len(s)
}

// modeStat chooses, for one batch-norm plan, between running on one thread
// (mode 1) and on the whole pool (mode 0) by measured time; see the g_nthr
// comment in shim.h for why neither is always right. The modes alternate
// until each has modeWindow timings, then the one with the lower best
// recent time runs and the other is retried every probeEvery calls. Using
// the best of the last few calls ignores one-off stalls (page faults on
// the first step, a preempted call), and a machine that turns busy or
// quiet is followed within a few calls or probes.
type modeStat struct {
	last  [2][modeWindow]float64 // seconds, ring buffers
	n     [2]int
	calls int
}

const (
	modeWindow = 3
	probeEvery = 16
)

func (m *modeStat) pick() int {
	m.calls++
	if m.n[0] < modeWindow || m.n[1] < modeWindow {
		if m.n[0] <= m.n[1] {
			return 0
		}
		return 1
	}
	best := 0
	if slices.Min(m.last[1][:]) < slices.Min(m.last[0][:]) {
		best = 1
	}
	if m.calls%probeEvery == 0 {
		return 1 - best
	}
	return best
}

func (m *modeStat) record(mode int, sec float64) {
	m.last[mode][m.n[mode]%modeWindow] = sec
	m.n[mode]++
}

// bnRun runs the batch-norm plan for key k (built by mk for a mode) in the
// mode chosen for it; must be called on the oneDNN thread.
// prep binds plan-dependent handles (the workspace) before the run.
func (b *backend) bnRun(name string, k pkey, mk func(serial bool) (*plan, error), h *handles, prep func(*plan)) {
	d := b.d
	mode := d.memops
	var st *modeStat
	if mode < 0 && b.det {
		mode = 0 // the fixed rule: the whole pool
	}
	if mode < 0 {
		if st = d.bnModes[k]; st == nil {
			st = &modeStat{}
			d.bnModes[k] = st
		}
		mode = st.pick()
	}
	mk1 := k
	mk1.flags |= 4 << uint8(mode)
	pl := d.plan(mk1, name, func() (*plan, error) { return mk(mode == 1) })
	prep(pl)
	t := time.Now()
	must(name, pl.exec(h))
	if st != nil {
		st.record(mode, time.Since(t).Seconds())
	}
}

func bnKey(kind int, dims [4]int64, l1, l2 int, p engine.BNParams, global bool) pkey {
	k := pkey{op: opBN, kind: uint8(kind), l1: int8(l1), l2: int8(l2), eps: p.Eps}
	copy(k.d[:], dims[:])
	if p.ReLU {
		k.flags |= 1
	}
	if global {
		k.flags |= 2
	}
	return k
}

func (b *backend) BatchNorm(y, x, gamma, beta, mean, variance *engine.Tensor, p engine.BNParams) engine.Workspace {
	dims, nd := bnDims("BatchNorm", x, gamma, beta, mean, variance)
	needShape("BatchNorm", "y", y, x.Shape()...)
	lay := layCode(x.Layout())
	kind := 1
	if p.Train {
		kind = 0
	}
	var ref *wsRef
	b.d.do(func() {
		d := b.d
		h := handles{ptr(x), ptr(gamma), ptr(beta), ptr(mean), ptr(variance), ptr(y)}
		b.bnRun("BatchNorm", bnKey(kind, dims, lay, lay, p, false), func(serial bool) (*plan, error) {
			return newBNPlan(kind, &dims, nd, lay, lay, p.Eps, p.ReLU, false, serial)
		}, &h, func(pl *plan) {
			if pl.ws == 0 {
				return
			}
			// The fused ReLU's mask (1 byte per element) lets the
			// backward skip an elementwise pass over dy. Masks are kept
			// up to bnKeepBytes in all (40 MB for ResNet-18 width 1/4 at
			// B=256, but 160 MB at full width, which would cost more
			// memory than the pass is worth); past that the backward
			// takes the mask from y (kept anyway as the next layer's
			// input) and every forward writes one throwaway buffer.
			// Buffers are keyed by y's storage, which the tape's pool
			// hands out in the same order every step.
			if wb := d.ws[uintptr(ptr(y))]; (wb != nil && len(wb.data) == pl.ws) || d.wsLen+pl.ws <= bnKeepBytes {
				ref = d.wsFor(y, pl.ws, x.Layout())
				h[6] = unsafe.Pointer(unsafe.SliceData(ref.buf.data))
				return
			}
			if len(d.bnWS) < pl.ws {
				d.bnWS = make([]byte, pl.ws)
			}
			h[6] = unsafe.Pointer(unsafe.SliceData(d.bnWS))
		})
	})
	y.SetLayout(x.Layout())
	if ref == nil {
		return nil
	}
	return ref
}

// bnKeepBytes bounds the batch-norm ReLU masks kept for backward passes.
var bnKeepBytes = 64 << 20

func (b *backend) BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, variance *engine.Tensor, ws engine.Workspace, p engine.BNParams) {
	dims, nd := bnDims("BatchNormBackward", x, gamma, mean, variance, dgamma, dbeta)
	needShape("BatchNormBackward", "dx", dx, x.Shape()...)
	needShape("BatchNormBackward", "dy", dy, x.Shape()...)
	lay, dyl := layCode(x.Layout()), layCode(dy.Layout())
	global := !p.Train
	ref, _ := ws.(*wsRef)
	kind := 2 // fused ReLU (if any) from the forward's workspace
	if p.ReLU && (global || ref == nil || ref.buf.gen != ref.gen) {
		// An inference forward keeps no workspace, and a training one's
		// may be gone (the forward output's buffer was reused): take the
		// ReLU mask from y.
		kind = 3
		if y == nil {
			panic("dnnl: BatchNormBackward: ReLU without a valid workspace needs the forward output y")
		}
		needShape("BatchNormBackward", "y", y, x.Shape()...)
		if y.Layout() != x.Layout() {
			panic(fmt.Sprintf("dnnl: BatchNormBackward: y layout %d differs from x layout %d", y.Layout(), x.Layout()))
		}
	}
	b.d.do(func() {
		h := handles{ptr(x), ptr(dy), ptr(y), ptr(gamma), ptr(mean), ptr(variance), nil, ptr(dx), ptr(dgamma), ptr(dbeta)}
		b.bnRun("BatchNormBackward", bnKey(kind, dims, lay, dyl, p, global), func(serial bool) (*plan, error) {
			return newBNPlan(kind, &dims, nd, lay, dyl, p.Eps, p.ReLU, global, serial)
		}, &h, func(pl *plan) {
			if pl.ws == 0 {
				return
			}
			if ref == nil || len(ref.buf.data) != pl.ws {
				panic("dnnl: BatchNormBackward: the forward's workspace does not fit this batch norm")
			}
			h[6] = unsafe.Pointer(unsafe.SliceData(ref.buf.data))
		})
	})
	dx.SetLayout(x.Layout())
}

// eltDims picks the shape an elementwise plan runs on: 1-D when every
// tensor is Plain (any rank), else the 4-D shape.
func eltDims(op string, ts ...*engine.Tensor) ([4]int64, int) {
	var dims [4]int64
	plain := true
	for _, t := range ts {
		if t.Layout() != engine.Plain {
			plain = false
		}
	}
	s := ts[0].Shape()
	if plain {
		dims[0] = int64(ts[0].Len())
		return dims, 1
	}
	if len(s) != 4 {
		panic(fmt.Sprintf("dnnl: %s: blocked tensor %v is not 4-D", op, s))
	}
	for i, v := range s {
		dims[i] = int64(v)
	}
	return dims, 4
}

func (b *backend) elt(name string, kind int, dims [4]int64, nd, l1, l2 int, relu bool, h *handles) {
	k := pkey{op: opElt, kind: uint8(kind), l1: int8(l1), l2: int8(l2), flags: uint8(nd)}
	if relu {
		k.flags |= 16
	}
	copy(k.d[:], dims[:])
	pl := b.d.plan(k, name, func() (*plan, error) { return newEltPlan(kind, &dims, nd, l1, l2, relu) })
	must(name, pl.exec(h))
}

func (b *backend) ReLU(y, x *engine.Tensor) {
	needShape("ReLU", "y", y, x.Shape()...)
	dims, nd := eltDims("ReLU", x)
	l := layCode(x.Layout())
	b.d.do(func() { b.elt("ReLU", 0, dims, nd, l, l, false, &handles{ptr(x), ptr(y)}) })
	y.SetLayout(x.Layout())
}

func (b *backend) ReLUBackward(dx, dy, y *engine.Tensor) {
	needShape("ReLUBackward", "dy", dy, y.Shape()...)
	needShape("ReLUBackward", "dx", dx, y.Shape()...)
	dims, nd := eltDims("ReLUBackward", y, dy)
	b.d.do(func() {
		b.elt("ReLUBackward", 1, dims, nd, layCode(y.Layout()), layCode(dy.Layout()), false, &handles{ptr(dy), ptr(y), ptr(dx)})
	})
	dx.SetLayout(y.Layout())
}

func (b *backend) Add(y, a, c *engine.Tensor, relu bool) {
	needShape("Add", "b", c, a.Shape()...)
	needShape("Add", "y", y, a.Shape()...)
	dims, nd := eltDims("Add", a, c)
	b.d.do(func() {
		b.elt("Add", 2, dims, nd, layCode(a.Layout()), layCode(c.Layout()), relu, &handles{ptr(a), ptr(c), ptr(y)})
	})
	y.SetLayout(a.Layout())
}

func (b *backend) ToPlain(dst, src *engine.Tensor) {
	needShape("ToPlain", "dst", dst, src.Shape()...)
	if src.Layout() == engine.Plain {
		copy(dst.Raw(), src.Raw())
		dst.SetLayout(engine.Plain)
		return
	}
	dims, nd := eltDims("ToPlain", src)
	b.d.do(func() {
		b.elt("ToPlain", 3, dims, nd, layCode(src.Layout()), 0, false, &handles{ptr(src), ptr(dst)})
	})
	dst.SetLayout(engine.Plain)
}

func poolDims(op string, x, y *engine.Tensor, p engine.PoolParams) [12]int64 {
	need4(op, "x", x)
	n, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	if p.KH < 1 || p.KW < 1 || p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 || p.PadH >= p.KH || p.PadW >= p.KW {
		panic(fmt.Sprintf("dnnl: %s: bad params %+v", op, p))
	}
	oh := (h+2*p.PadH-p.KH)/p.StrideH + 1
	ow := (w+2*p.PadW-p.KW)/p.StrideW + 1
	if oh < 1 || ow < 1 {
		panic(fmt.Sprintf("dnnl: %s: x %v too small for %+v", op, x.Shape(), p))
	}
	needShape(op, "output", y, n, c, oh, ow)
	return [12]int64{int64(n), int64(c), int64(h), int64(w), int64(oh), int64(ow),
		int64(p.KH), int64(p.KW), int64(p.StrideH), int64(p.StrideW), int64(p.PadH), int64(p.PadW)}
}

func (b *backend) pool(name string, kind int, dm [12]int64, lay, l2 int) *plan {
	k := pkey{op: opPool, kind: uint8(kind), l1: int8(lay), l2: int8(l2)}
	copy(k.d[:], dm[:])
	return b.d.plan(k, name, func() (*plan, error) { return newPoolPlan(kind, &dm, lay, l2) })
}

func (b *backend) MaxPool2D(y, x *engine.Tensor, p engine.PoolParams) engine.Workspace {
	dm := poolDims("MaxPool2D", x, y, p)
	lay := layCode(x.Layout())
	var ref *wsRef
	b.d.do(func() {
		pl := b.pool("MaxPool2D", 0, dm, lay, lay)
		h := handles{ptr(x), ptr(y)}
		ref = b.d.wsFor(y, max(pl.ws, 1), x.Layout())
		if pl.ws > 0 {
			h[2] = unsafe.Pointer(unsafe.SliceData(ref.buf.data))
		}
		must("MaxPool2D", pl.exec(&h))
	})
	y.SetLayout(x.Layout())
	return ref
}

func (b *backend) MaxPool2DBackward(dx, dy *engine.Tensor, ws engine.Workspace, p engine.PoolParams) {
	ref, ok := ws.(*wsRef)
	if !ok || ref == nil {
		panic(fmt.Sprintf("dnnl: MaxPool2DBackward: workspace %T is not from this backend's MaxPool2D", ws))
	}
	dm := poolDims("MaxPool2DBackward", dx, dy, p)
	lay := layCode(ref.lay)
	b.d.do(func() {
		pl := b.pool("MaxPool2DBackward", 1, dm, lay, layCode(dy.Layout()))
		if !ref.valid(max(pl.ws, 1)) {
			panic("dnnl: MaxPool2DBackward: workspace overwritten (the forward output's buffer was reused before backward)")
		}
		h := handles{ptr(dy), nil, ptr(dx)}
		if pl.ws > 0 {
			h[1] = unsafe.Pointer(unsafe.SliceData(ref.buf.data))
		}
		must("MaxPool2DBackward", pl.exec(&h))
	})
	dx.SetLayout(ref.lay)
}

// GlobalAvgPool is average pooling with a kernel of H x W. Its [N,C,1,1]
// output in x's layout has the same memory order as Plain [N,C] (a blocked
// layout is only used when C is a multiple of the block).
func (b *backend) GlobalAvgPool(y, x *engine.Tensor) {
	need4("GlobalAvgPool", "x", x)
	n, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	needShape("GlobalAvgPool", "y", y, n, c)
	dm := [12]int64{int64(n), int64(c), int64(h), int64(w), 1, 1, int64(h), int64(w), 1, 1, 0, 0}
	lay := layCode(x.Layout())
	b.d.do(func() {
		must("GlobalAvgPool", b.pool("GlobalAvgPool", 2, dm, lay, lay).exec(&handles{ptr(x), ptr(y)}))
	})
	y.SetLayout(engine.Plain)
}

func (b *backend) GlobalAvgPoolBackward(dx, dy *engine.Tensor) {
	need4("GlobalAvgPoolBackward", "dx", dx)
	n, c, h, w := dx.Dim(0), dx.Dim(1), dx.Dim(2), dx.Dim(3)
	needShape("GlobalAvgPoolBackward", "dy", dy, n, c)
	if dy.Layout() != engine.Plain {
		panic(fmt.Sprintf("dnnl: GlobalAvgPoolBackward: dy %v is not Plain", dy.Shape()))
	}
	dm := [12]int64{int64(n), int64(c), int64(h), int64(w), 1, 1, int64(h), int64(w), 1, 1, 0, 0}
	xl := b.d.blocked(c)
	lay := layCode(xl)
	b.d.do(func() {
		must("GlobalAvgPoolBackward", b.pool("GlobalAvgPoolBackward", 3, dm, lay, lay).exec(&handles{ptr(dy), nil, ptr(dx)}))
	})
	dx.SetLayout(xl)
}

func (b *backend) MatMul(c, a, bm *engine.Tensor, transA, transB bool, alpha, beta float32) {
	for _, t := range []*engine.Tensor{c, a, bm} {
		if len(t.Shape()) != 2 || t.Layout() != engine.Plain {
			panic(fmt.Sprintf("dnnl: MatMul: a %v, b %v, c %v must be Plain 2-D", a.Shape(), bm.Shape(), c.Shape()))
		}
	}
	m, k := a.Dim(0), a.Dim(1)
	if transA {
		m, k = k, m
	}
	k2, n := bm.Dim(0), bm.Dim(1)
	if transB {
		k2, n = n, k2
	}
	if k != k2 || c.Dim(0) != m || c.Dim(1) != n {
		panic(fmt.Sprintf("dnnl: MatMul: a %v (trans %v), b %v (trans %v), c %v: shapes do not agree", a.Shape(), transA, bm.Shape(), transB, c.Shape()))
	}
	b.d.do(func() {
		must("MatMul", sgemm(transA, transB, m, n, k, alpha, a.Raw(), a.Dim(1), bm.Raw(), bm.Dim(1), beta, c.Raw(), n))
	})
}

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
