package dnnl

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// Accuracy measure used throughout: relErr(a, ref) = max|a-ref| / max(1,
// max|ref|), i.e. absolute error for values of order 1 and relative error
// for large ones. Direct algorithms must stay within tolDirect; Winograd
// (only on AVX-512 CPUs) within tolWinograd.
const (
	tolDirect   = 1e-4
	tolWinograd = 2e-3
)

// newBackend returns the backend under test. Tests force the direct
// convolution algorithm (unless SIMCLR_CONV_ALGO is set) so that the 1e-4
// bound applies whatever auto would pick on this CPU; TestConvAuto covers
// the automatic choice.
func newBackend(t testing.TB) engine.Backend {
	t.Helper()
	if _, ok := t.(*testing.T); ok && os.Getenv("SIMCLR_CONV_ALGO") == "" {
		t.Setenv("SIMCLR_CONV_ALGO", "direct")
	}
	b, err := New(0)
	if err != nil {
		t.Skipf("oneDNN unavailable: %v", err)
	}
	return b
}

func convTol() float64 {
	if os.Getenv("SIMCLR_CONV_ALGO") == "direct" {
		return tolDirect
	}
	return tolWinograd // winograd, or auto (which may pick it)
}

func randT(rng *rand.Rand, shape ...int) *engine.Tensor { return enginetest.RandN(rng, shape...) }

func plainCopy(b engine.Backend, t *engine.Tensor) []float32 { return enginetest.PlainCopy(b, t) }

func relErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range got {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	return d / max(1, m)
}

func check(t *testing.T, b engine.Backend, what string, got *engine.Tensor, want *engine.Tensor, tol float64) {
	t.Helper()
	if want.Layout() != engine.Plain {
		t.Fatalf("%s: reference output is not Plain", what)
	}
	if e := relErr(plainCopy(b, got), want.Data()); e > tol {
		t.Errorf("%s: relative error %.3g > %.3g", what, e, tol)
	}
}

// blockedCopy returns x in the backend's activation layout (blocked when it
// has one for x's channel count), as activations are between kernels.
func blockedCopy(t testing.TB, b engine.Backend, x *engine.Tensor) *engine.Tensor {
	return enginetest.BlockedCopy(t, b, x)
}

type convCase struct{ n, c, h, w, o, k, s, p int }

// TestConformance runs the conformance suite that every backend passes
// (enginetest.CheckBackend): each kernel, in every layout this backend
// produces, against float64 oracles.
func TestConformance(t *testing.T) {
	enginetest.CheckBackendTol(t, newBackend(t), enginetest.Tolerances{Conv: convTol(), Other: tolDirect})
}

// TestConvWinograd forces Winograd wherever a kernel exists: oneDNN's on
// AVX-512, the engine's F(2x2,3x3) on AVX2 (3x3 stride-1 pad-1 shapes with
// even sides on 8-channel blocks); other shapes run direct.
func TestConvWinograd(t *testing.T) {
	t.Setenv("SIMCLR_CONV_ALGO", "winograd")
	enginetest.CheckConv(t, newBackend(t), convTol())
}

// TestBatchNormThreadModes checks batch norm on one thread, on the pool and
// in the timed choice between them (repeated so that auto mode runs both).
func TestBatchNormThreadModes(t *testing.T) {
	for _, m := range []string{"", "0", "1"} {
		t.Run("SIMCLR_DNNL_SERIAL_MEMOPS="+m, func(t *testing.T) {
			t.Setenv("SIMCLR_DNNL_SERIAL_MEMOPS", m)
			b := newBackend(t)
			for range 5 {
				enginetest.CheckBatchNorm(t, b, tolDirect)
			}
		})
	}
}

// TestBatchNormInferenceBackward covers what the conformance suite leaves
// out: this backend also differentiates batch norm with fixed statistics
// (Train unset), although the tape does that itself.
func TestBatchNormInferenceBackward(t *testing.T) {
	b := newBackend(t)
	rng := rand.New(rand.NewPCG(2, 2))
	for _, s := range [][]int{{4, 16, 5, 3}, {2, 5, 3, 3}, {1, 32, 4, 4}, {6, 7}, {3, 16}} {
		c := s[1]
		for _, relu := range []bool{false, true} {
			name := fmt.Sprintf("%v/relu=%v", s, relu)
			p := engine.BNParams{Eps: 1e-5, ReLU: relu}
			x, dy := randT(rng, s...), randT(rng, s...)
			gamma, beta, mean, variance := randT(rng, c), randT(rng, c), randT(rng, c), randT(rng, c)
			for i := range variance.Raw() {
				variance.Raw()[i] = variance.Raw()[i]*variance.Raw()[i] + 0.5
			}
			y := engine.New(s...)
			ws := b.BatchNorm(y, x, gamma, beta, mean, variance, p)
			yp := engine.FromData(plainCopy(b, y), s...)
			dxRef, dgRef, dbRef := engine.New(s...), engine.New(c), engine.New(c)
			bnFrozenGrad(dxRef, dgRef, dbRef, dy, x, yp, gamma, mean, variance, p)
			for _, w := range []engine.Workspace{ws, nil} {
				dx, dg, db := engine.New(s...), engine.New(c), engine.New(c)
				b.BatchNormBackward(dx, dg, db, dy, x, y, gamma, mean, variance, w, p)
				lay := fmt.Sprintf(" ws=%v", w != nil)
				check(t, b, name+" dx"+lay, dx, dxRef, tolDirect)
				check(t, b, name+" dgamma"+lay, dg, dgRef, tolDirect)
				check(t, b, name+" dbeta"+lay, db, dbRef, tolDirect)
			}
		}
	}
}

// bnFrozenGrad is the gradient of batch norm with constant statistics
// (inference mode), the oracle for BatchNormBackward with Train unset.
func bnFrozenGrad(dx, dg, db, dy, x, y, gamma, mean, variance *engine.Tensor, p engine.BNParams) {
	n, c := x.Dim(0), x.Dim(1)
	sp := x.Len() / (n * c)
	for ch := range c {
		inv := 1 / math.Sqrt(float64(variance.Data()[ch])+float64(p.Eps))
		var sg, sgx float64
		for i := range n {
			for j := range sp {
				k := (i*c+ch)*sp + j
				g := float64(dy.Data()[k])
				if p.ReLU && y.Data()[k] <= 0 {
					g = 0
				}
				sg += g
				sgx += g * (float64(x.Data()[k]) - float64(mean.Data()[ch])) * inv
				dx.Data()[k] = float32(g * float64(gamma.Data()[ch]) * inv)
			}
		}
		dg.Data()[ch], db.Data()[ch] = float32(sgx), float32(sg)
	}
}

func TestBadInputPanicsWithMessage(t *testing.T) {
	b := newBackend(t)
	defer func() {
		r := recover()
		if s, _ := r.(string); !strings.Contains(s, "Conv2D") || !strings.Contains(s, "channels differ") {
			t.Fatalf("panic = %v, want a Conv2D channel message", r)
		}
	}()
	b.Conv2D(engine.New(1, 4, 3, 3), engine.New(1, 3, 3, 3), engine.New(4, 2, 1, 1), nil, engine.ConvParams{StrideH: 1, StrideW: 1})
}

func threads(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no Threads line in /proc/self/status")
	return 0
}

// TestThreadCountBounded runs kernels from many goroutines (which Go spreads
// over many OS threads); all oneDNN calls go through one OS thread, so only
// one OpenMP pool may exist.
func TestThreadCountBounded(t *testing.T) {
	newBackend(t)
	// A larger pool than the machine has cores makes a pool per OS thread
	// visible even on a small machine; New(0) in later tests resets it.
	const pool = 6
	b, err := New(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer New(0)
	rng := rand.New(rand.NewPCG(6, 6))
	x, w := randT(rng, 2, 16, 8, 8), randT(rng, 16, 16, 3, 3)
	p := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	before := threads(t)
	var wg sync.WaitGroup
	const workers = 12
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			y, r := engine.New(2, 16, 8, 8), engine.New(2, 16, 8, 8)
			for range 15 {
				b.Conv2D(y, x, w, nil, p)
				b.ReLU(r, y)
			}
		}()
	}
	wg.Wait()
	after := threads(t)
	// Go may add threads for the busy goroutines, but one OpenMP pool per
	// OS thread would add pool-1 threads for each of them on top.
	if limit := before + workers + pool; after > limit {
		t.Errorf("threads grew from %d to %d (limit %d): OpenMP pools multiplied", before, after, limit)
	}
	t.Logf("threads: %d before, %d after", before, after)
}

// TestTapeGradients runs a small residual network forward and backward on
// the Tape with both backends and compares every parameter's gradient.
func TestTapeGradients(t *testing.T) {
	b := newBackend(t)
	rng := rand.New(rand.NewPCG(7, 7))
	x := randT(rng, 4, 3, 8, 8)
	params := map[string]*engine.Tensor{
		"w1": randT(rng, 16, 3, 3, 3), "g1": randT(rng, 16), "b1": randT(rng, 16),
		"w2": randT(rng, 16, 16, 3, 3), "g2": randT(rng, 16), "b2": randT(rng, 16),
		"w3": randT(rng, 32, 16, 1, 1), "g3": randT(rng, 32), "b3": randT(rng, 32),
		"w4": randT(rng, 32, 16, 3, 3),
		"fc": randT(rng, 10, 32), "fcb": randT(rng, 10),
		"g5": randT(rng, 10), "b5": randT(rng, 10),
	}
	for _, p := range params {
		p.SetRequiresGrad(true)
	}
	s1 := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	s2 := engine.ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	d2 := engine.ConvParams{StrideH: 2, StrideW: 2}
	run := func(be engine.Backend) (loss float32, grads map[string][]float32) {
		for _, p := range params {
			p.ZeroGrad()
		}
		tp := engine.NewTape(be)
		P := params
		h := tp.BatchNorm(tp.Conv2D(x, P["w1"], nil, s1), P["g1"], P["b1"], nil, true, true)
		r := tp.BatchNorm(tp.Conv2D(h, P["w2"], nil, s1), P["g2"], P["b2"], nil, true, false)
		h = tp.AddReLUInPlace(r, h) // r is dead: the add may overwrite it
		sc := tp.BatchNorm(tp.Conv2D(h, P["w3"], nil, d2), P["g3"], P["b3"], nil, true, false)
		h = tp.AddReLU(tp.Conv2D(h, P["w4"], nil, s2), sc)
		h = tp.MaxPool2D(h, engine.PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1})
		z := tp.Linear(tp.GlobalAvgPool(h), P["fc"], P["fcb"])
		z = tp.BatchNorm(z, P["g5"], P["b5"], nil, true, true)
		l := tp.Mean(tp.Mul(z, z))
		tp.Backward(l)
		grads = map[string][]float32{}
		for k, p := range P {
			if p.Grad() == nil {
				t.Fatalf("%s: no gradient for %s", be.Name(), k)
			}
			grads[k] = append([]float32(nil), p.Grad().Data()...)
		}
		return l.Item(), grads
	}
	lr, gr := run(engine.Reference())
	ld, gd := run(b)
	if e := relErr([]float32{ld}, []float32{lr}); e > tolDirect {
		t.Errorf("loss %g vs reference %g", ld, lr)
	}
	// Gradients pass through several batch norms, which amplify float32
	// rounding differences; 1e-3 is still far below any real mistake.
	for k := range gr {
		if e := relErr(gd[k], gr[k]); e > 1e-3 {
			t.Errorf("grad %s: relative error %.3g", k, e)
		}
	}
}
