//go:build cgo && !purego

package dnnl

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// TestSteadyStateCreatesNothing runs the same training step repeatedly on
// a pooled tape: once the first steps have built every plan (batch norms
// get one per thread mode, both timed on the first call), no plan (the only
// oneDNN allocations) and no workspace buffer may be created, and the
// fused BN+ReLU backward finds its kept masks valid (no fallback plan that
// masks with y appears). With no mask budget the fallback runs instead.
func TestSteadyStateCreatesNothing(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(8, 8))
	x := randT(rng, 4, 3, 8, 8)
	w1, w2 := randT(rng, 16, 3, 3, 3), randT(rng, 16, 16, 3, 3)
	g, bb := randT(rng, 16), randT(rng, 16)
	for _, p := range []*engine.Tensor{w1, w2, g, bb} {
		p.SetRequiresGrad(true)
	}
	s1 := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	tp := engine.NewTape(be)
	step := func() {
		h := tp.BatchNorm(tp.Conv2D(x, w1, nil, s1), g, bb, nil, true, true)
		h = tp.AddReLU(tp.BatchNorm(tp.Conv2D(h, w2, nil, s1), g, bb, nil, true, true), h)
		tp.Backward(tp.Mean(tp.GlobalAvgPool(h)))
		tp.Reset()
	}
	counts := func() (plans, ws int) {
		theDisp.do(func() { plans, ws = len(theDisp.plans), len(theDisp.ws) })
		return
	}
	fallbacks := func() (n int) {
		theDisp.do(func() {
			for k := range theDisp.plans {
				if k.op == opBN && k.kind == 3 {
					n++
				}
			}
		})
		return n
	}
	f0 := fallbacks()
	for range 4 {
		step()
	}
	p1, w1n := counts()
	for range 3 {
		step()
	}
	p2, w2n := counts()
	if p1 != p2 || w1n != w2n {
		t.Errorf("plans %d -> %d, workspaces %d -> %d after warm-up", p1, p2, w1n, w2n)
	}
	if f := fallbacks(); f != f0 {
		t.Errorf("BN backward fell back to the y-mask plan %d times: kept mask not valid", f-f0)
	}

	// The budget: a batch norm keeps its mask only while masks fit in it.
	// Both outputs stay alive: masks are indexed by the output's storage,
	// and a reused address would find the first mask already kept.
	y1, y2 := engine.New(4, 16, 8, 8), engine.New(4, 16, 8, 8)
	bn := func(y *engine.Tensor) engine.Workspace {
		xb := blockedCopy(t, be, randT(rng, 4, 16, 8, 8))
		m, v := engine.New(16), engine.New(16)
		return be.BatchNorm(y, xb, g, bb, m, v, engine.BNParams{Eps: 1e-5, Train: true, ReLU: true})
	}
	if bn(y1) == nil {
		t.Errorf("training batch norm with ReLU kept no mask under the default budget")
	}
	old := bnKeepBytes
	bnKeepBytes = 0
	defer func() { bnKeepBytes = old }()
	if bn(y2) != nil {
		t.Errorf("batch norm kept a mask with no budget")
	}
	runtime.KeepAlive(y1)
}

// TestOneOSThread checks the mechanism behind TestThreadCountBounded: after
// kernels and matrix products from many goroutines, every call into oneDNN
// came from a single OS thread.
func TestOneOSThread(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(10, 10))
	x, y := randT(rng, 64), engine.New(64)
	a, c := randT(rng, 8, 8), engine.New(8, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				be.ReLU(y, x)
				be.MatMul(c, a, a, false, true, 1, 0)
			}
		}()
	}
	wg.Wait()
	if n := cThreadsSeen(); n != 1 {
		t.Errorf("%d OS threads called oneDNN, want 1", n)
	}
}

// TestWorkersBlockSignals checks that the OpenMP worker threads run with
// every signal blocked, so that Go's handlers (SIGPROF while profiling,
// SIGINT on Ctrl-C) never run on a worker's stack in the middle of a JIT
// kernel: before they were blocked, `simclr bench --cpuprofile` crashed
// with heap corruption within a minute. Linux only (reads /proc).
func TestWorkersBlockSignals(t *testing.T) {
	be := newBackend(t)
	if maxThreads() < 2 {
		t.Skip("one thread: no OpenMP workers")
	}
	rng := rand.New(rand.NewPCG(5, 5))
	x, w := randT(rng, 8, 16, 16, 16), randT(rng, 16, 16, 3, 3)
	be.Conv2D(engine.New(8, 16, 16, 16), x, w, nil, engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1})
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		t.Skip("no /proc/self/task")
	}
	const sigint, sigprof = 2, 27
	blocked := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "SigBlk:"); ok {
				m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if err == nil && m&(1<<(sigint-1)) != 0 && m&(1<<(sigprof-1)) != 0 {
					blocked++
				}
			}
		}
	}
	if blocked < maxThreads()-1 {
		t.Errorf("%d threads block SIGINT and SIGPROF, want at least the %d OpenMP workers", blocked, maxThreads()-1)
	}
}
