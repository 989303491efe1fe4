//go:build cgo && !purego

package dnnl

// This is the only file that imports "C": shim.h defines static functions
// and process-wide state, so it must be compiled exactly once.

/*
#cgo CFLAGS: -O3 -fopenmp
#cgo LDFLAGS: -ldnnl -lgomp
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// plan is a cached, ready-to-run kernel (see shim.h).
type plan struct {
	p     *C.shim_plan
	ws    int    // workspace bytes the caller provides, 0 if none
	steps int    // primitives per run: reorders + the main one
	impl  string // oneDNN implementation name, e.g. "jit:avx2"
}

// handles are the caller buffers bound to a plan's slots for one run.
type handles [10]unsafe.Pointer

func cInit(threads int) error {
	var err [256]C.char
	if C.shim_init(C.int(threads), &err[0]) != 0 {
		return errors.New(C.GoString(&err[0]))
	}
	return nil
}

// Version is the version of the oneDNN library linked into the process,
// "MAJOR.MINOR.PATCH" and the git hash of its sources when it has one.
func Version() string {
	v := C.dnnl_version()
	s := fmt.Sprintf("%d.%d.%d", int(v.major), int(v.minor), int(v.patch))
	if v.hash != nil {
		if h := C.GoString(v.hash); h != "" && h != "N/A" {
			s += " (" + h + ")"
		}
	}
	return s
}

func cMaxThreads() int { return int(C.shim_max_threads()) }

// cMemopsMode is SIMCLR_DNNL_SERIAL_MEMOPS as read by shim_init: -1 unset,
// 0 memory-bound kernels on every thread, 1 on one thread.
func cMemopsMode() int { return int(C.shim_memops_mode()) }

func cBlockSize() int { return int(C.shim_block_size()) }

func finishPlan(p *C.shim_plan, err *C.char, what string) (*plan, error) {
	if p == nil {
		return nil, fmt.Errorf("%s: %s", what, C.GoString(err))
	}
	return &plan{p: p, ws: int(C.shim_ws_size(p)), steps: int(C.shim_nsteps(p)), impl: C.GoString(C.shim_impl(p))}, nil
}

func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// newConvPlan: kind 0 forward, 1 backward data, 2 backward weights;
// d = N C H W O KH KW OH OW SH SW PH PW.
func newConvPlan(kind int, wino bool, d *[13]int64, xl, yl int, bias bool) (*plan, error) {
	var err [256]C.char
	p := C.shim_conv(C.int(kind), b2i(wino), (*C.int64_t)(unsafe.Pointer(&d[0])), C.int(xl), C.int(yl), b2i(bias), &err[0])
	return finishPlan(p, &err[0], "convolution")
}

// newWinoPlan builds the engine's own Winograd F(2x2,3x3) plan (wino.h).
func newWinoPlan(kind int, d *[13]int64, xl, yl int, bias bool) (*plan, error) {
	var err [256]C.char
	p := C.shim_conv_wino23(C.int(kind), (*C.int64_t)(unsafe.Pointer(&d[0])), C.int(xl), C.int(yl), b2i(bias), &err[0])
	return finishPlan(p, &err[0], "convolution")
}

// winoTuneBatch is the smallest batch on which the engine's Winograd kernel
// for dims d runs as it does on big batches (full tile chunks).
func winoTuneBatch(d *[13]int64) int64 {
	return int64(C.shim_wino_tune_batch((*C.int64_t)(unsafe.Pointer(&d[0]))))
}

// newBNPlan builds a batch-norm plan; serial asks for one thread (which
// SIMCLR_DNNL_SERIAL_MEMOPS may override, see cMemopsMode).
func newBNPlan(kind int, dims *[4]int64, nd, lay, dyl int, eps float32, relu, global, serial bool) (*plan, error) {
	var err [256]C.char
	p := C.shim_bn(C.int(kind), C.int(nd), (*C.int64_t)(unsafe.Pointer(&dims[0])), C.int(lay), C.int(dyl), C.float(eps), b2i(relu), b2i(global), b2i(serial), &err[0])
	return finishPlan(p, &err[0], "batch norm")
}

func newEltPlan(kind int, dims *[4]int64, nd, lay, l2 int, relu bool) (*plan, error) {
	var err [256]C.char
	p := C.shim_eltwise(C.int(kind), C.int(nd), (*C.int64_t)(unsafe.Pointer(&dims[0])), C.int(lay), C.int(l2), b2i(relu), &err[0])
	return finishPlan(p, &err[0], "elementwise")
}

// newPoolPlan: d = N C H W OH OW KH KW SH SW PH PW.
func newPoolPlan(kind int, d *[12]int64, lay, l2 int) (*plan, error) {
	var err [256]C.char
	p := C.shim_pool(C.int(kind), (*C.int64_t)(unsafe.Pointer(&d[0])), C.int(lay), C.int(l2), &err[0])
	return finishPlan(p, &err[0], "pooling")
}

// exec runs the plan on the given buffers in one cgo call. C keeps none of
// the pointers after it returns (the next run rebinds every slot).
func (p *plan) exec(h *handles) error {
	if r := C.shim_exec(p.p, h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]); r != 0 {
		return fmt.Errorf("oneDNN execution failed (%d) in %s", int(r), p.impl)
	}
	return nil
}

// runMain times iters runs of the plan's main primitive alone, inside C.
func (p *plan) runMain(iters int) float64 { return float64(C.shim_run_main(p.p, C.int(iters))) }

func sgemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) error {
	r := C.shim_sgemm(b2i(ta), b2i(tb), C.int64_t(m), C.int64_t(n), C.int64_t(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(unsafe.SliceData(a))), C.int64_t(lda),
		(*C.float)(unsafe.Pointer(unsafe.SliceData(b))), C.int64_t(ldb), C.float(beta),
		(*C.float)(unsafe.Pointer(unsafe.SliceData(c))), C.int64_t(ldc))
	if r != 0 {
		return errors.New("dnnl_sgemm failed")
	}
	return nil
}

func (p *plan) free() { C.plan_free(p.p) }

// cThreadsSeen is how many OS threads have called oneDNN so far.
func cThreadsSeen() int { return int(C.shim_threads_seen()) }
