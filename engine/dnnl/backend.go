//go:build cgo && !purego

package dnnl

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/simclr-go/simclr/engine"
)

// This file is the engine.Backend: argument checks (shapes.go), the choice
// of algorithm (tune.go), then the cached plan (keys.go, dispatch.go) run
// on the oneDNN thread.

// Convolution algorithm modes (SIMCLR_CONV_ALGO, Options.Deterministic).
const (
	algoAuto = iota
	algoDirect
	algoWinograd
	algoFixed // Options.Deterministic: fixedConvWino
)

// Options configure a backend made by NewWithOptions.
type Options struct {
	// Threads is the OpenMP pool size; <= 0 uses every core. The pool is
	// process-wide: the last backend created decides its size.
	Threads int
	// Deterministic chooses every kernel by a fixed rule (fixedConvWino,
	// batch norm on one thread) instead of by timing, so that two
	// processes with the same Threads compute the same bits. A
	// SIMCLR_CONV_ALGO or SIMCLR_DNNL_SERIAL_MEMOPS setting, or a choice
	// given by SetTuning, still wins.
	Deterministic bool
}

// New returns the oneDNN backend with threads compute threads (<= 0: every
// core) and kernels chosen by timing.
func New(threads int) (engine.Backend, error) { return NewWithOptions(Options{Threads: threads}) }

// NewWithOptions returns the oneDNN backend configured by o. Its choices
// of kernel start empty: each is made on the first call of its shape (see
// tune.go) and kept for the backend's life.
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
			d.nthr = cMaxThreads()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("dnnl: %w", err)
	}
	if o.Deterministic && algo == algoAuto {
		algo = algoFixed
	}
	b := &backend{d: d, algo: algo, det: o.Deterministic, tune: newTuning()}
	if algo == algoAuto { // timing: start from the process's choices
		d.do(func() { b.tune = d.shared.clone() })
	}
	return b, nil
}

type backend struct {
	d    *dispatcher
	algo int
	det  bool    // Options.Deterministic
	tune *tuning // touched only on the oneDNN thread
}

var _ engine.Tuner = (*backend)(nil)

func (b *backend) Name() string { return "dnnl" }

func (b *backend) Caps() engine.Caps { return engine.Caps{Tuned: true} }

// conv runs a convolution with the algorithm chosen for its shape, making
// the choice on first use.
func (b *backend) conv(kind int, dm *[13]int64, xl, yl int, bias bool, h *handles) {
	ck := convKey(kind, dm, xl, yl, bias)
	a, seen := b.tune.conv[ck]
	if !seen {
		var timed bool
		a, timed = b.chooseConv(ck, kind, dm, xl, yl, bias, h)
		b.tune.conv[ck] = a
		b.tune.record(ck, convAlgoNames[a], timed)
		if _, ok := b.d.shared.conv[ck]; !ok && b.algo == algoAuto {
			b.d.shared.conv[ck] = a
			b.d.shared.record(ck, convAlgoNames[a], timed)
		}
	}
	p := b.d.plan(ck.withAlgo(a), "convolution", func() (*plan, error) { return buildConv(a, kind, dm, xl, yl, bias) })
	must("convolution", p.exec(h))
}

// convPlan is the cached plan a convolution runs (nil before its first call).
func (b *backend) convPlan(kind int, dm *[13]int64, xl, yl int, bias bool) *plan {
	var p *plan
	b.d.do(func() {
		ck := convKey(kind, dm, xl, yl, bias)
		if a, ok := b.tune.conv[ck]; ok {
			p = b.d.plans[ck.withAlgo(a)]
		}
	})
	return p
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

// bnRun runs the batch-norm plan for choice key k (built by mk for a
// thread mode) in the mode chosen for it, making the choice on first use;
// must be called on the oneDNN thread. prep binds plan-dependent handles
// (the workspace) before the run.
func (b *backend) bnRun(name string, k pkey, mk func(serial bool) (*plan, error), h *handles, prep func(*plan)) {
	mode, seen := b.tune.bn[k]
	if !seen {
		var timed bool
		mode, timed = b.chooseBN(name, k, mk, h, prep)
		b.tune.bn[k] = mode
		b.tune.record(k, bnModeNames[mode], timed)
		if _, ok := b.d.shared.bn[k]; !ok && b.algo == algoAuto {
			b.d.shared.bn[k] = mode
			b.d.shared.record(k, bnModeNames[mode], timed)
		}
	}
	pl := b.d.plan(k.withMode(mode), name, func() (*plan, error) { return mk(mode == bnSerial) })
	prep(pl)
	must(name, pl.exec(h))
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
		b.bnRun("BatchNorm", bnKey(kind, dims, lay, lay, p.Eps, p.ReLU, false), func(serial bool) (*plan, error) {
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
		b.bnRun("BatchNormBackward", bnKey(kind, dims, lay, dyl, p.Eps, p.ReLU, global), func(serial bool) (*plan, error) {
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

func (b *backend) elt(name string, kind int, dims [4]int64, nd, l1, l2 int, relu bool, h *handles) {
	pl := b.d.plan(eltKey(kind, dims, nd, l1, l2, relu), name, func() (*plan, error) { return newEltPlan(kind, &dims, nd, l1, l2, relu) })
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

func (b *backend) pool(name string, kind int, dm [12]int64, lay, l2 int) *plan {
	return b.d.plan(poolKey(kind, dm, lay, l2), name, func() (*plan, error) { return newPoolPlan(kind, &dm, lay, l2) })
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
