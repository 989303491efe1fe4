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

func randT(rng *rand.Rand, shape ...int) *engine.Tensor {
	t := engine.New(shape...)
	for i := range t.Raw() {
		t.Raw()[i] = float32(rng.NormFloat64())
	}
	return t
}

func plainCopy(b engine.Backend, t *engine.Tensor) []float32 {
	p := engine.New(t.Shape()...)
	b.ToPlain(p, t)
	return p.Data()
}

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

// blockedCopy returns x in the backend's blocked layout (when it has one for
// x's channel count) via an exact 1x1 identity convolution.
func blockedCopy(t *testing.T, b engine.Backend, x *engine.Tensor) *engine.Tensor {
	t.Helper()
	c := x.Dim(1)
	w := engine.New(c, c, 1, 1)
	for i := range c {
		w.Raw()[i*c+i] = 1
	}
	y := engine.New(x.Shape()...)
	b.Conv2D(y, x, w, nil, engine.ConvParams{StrideH: 1, StrideW: 1})
	if e := relErr(plainCopy(b, y), x.Data()); e != 0 {
		t.Fatalf("identity conv not exact: %g", e)
	}
	return y
}

// variants returns x as given and, where possible, in blocked layout.
func variants(t *testing.T, b engine.Backend, x *engine.Tensor) []*engine.Tensor {
	v := []*engine.Tensor{x}
	if len(x.Shape()) == 4 {
		if bl := blockedCopy(t, b, x); bl.Layout() != engine.Plain {
			v = append(v, bl)
		}
	}
	return v
}

type convCase struct{ n, c, h, w, o, k, s, p int }

func TestConv(t *testing.T) { testConv(t, newBackend(t)) }

// TestConvWinograd forces Winograd wherever a kernel exists: oneDNN's on
// AVX-512, the engine's F(2x2,3x3) on AVX2 (3x3 stride-1 pad-1 shapes with
// even sides on 8-channel blocks); other shapes run direct.
func TestConvWinograd(t *testing.T) {
	t.Setenv("SIMCLR_CONV_ALGO", "winograd")
	testConv(t, newBackend(t))
}

func testConv(t *testing.T, b engine.Backend) {
	ref := engine.Reference()
	rng := rand.New(rand.NewPCG(1, 1))
	cases := []convCase{
		{1, 3, 7, 9, 16, 3, 1, 1},  // network input: 3 channels, batch 1
		{2, 16, 8, 8, 16, 3, 1, 1}, // blocked in and out
		{2, 5, 9, 7, 6, 3, 2, 1},   // odd everything
		{1, 8, 11, 11, 24, 7, 2, 3},
		{3, 32, 6, 6, 64, 1, 2, 0}, // 1x1 stride-2 downsample
		{2, 16, 5, 5, 8, 1, 1, 0},
		{2, 64, 8, 8, 128, 3, 2, 1},
		{1, 16, 3, 3, 16, 3, 1, 1},
		{2, 16, 6, 4, 24, 3, 1, 1}, // the engine's own Winograd on AVX2
	}
	tol := convTol()
	for _, cc := range cases {
		for _, bias := range []bool{false, true} {
			name := fmt.Sprintf("%+v/bias=%v", cc, bias)
			p := engine.ConvParams{StrideH: cc.s, StrideW: cc.s, PadH: cc.p, PadW: cc.p}
			oh := (cc.h+2*cc.p-cc.k)/cc.s + 1
			ow := (cc.w+2*cc.p-cc.k)/cc.s + 1
			x := randT(rng, cc.n, cc.c, cc.h, cc.w)
			w := randT(rng, cc.o, cc.c, cc.k, cc.k)
			var bb, dbRef, db *engine.Tensor
			if bias {
				bb = randT(rng, cc.o)
				dbRef, db = engine.New(cc.o), engine.New(cc.o)
			}
			dy := randT(rng, cc.n, cc.o, oh, ow)
			yRef := engine.New(cc.n, cc.o, oh, ow)
			ref.Conv2D(yRef, x, w, bb, p)
			dxRef := engine.New(x.Shape()...)
			ref.Conv2DBackwardData(dxRef, dy, w, p)
			dwRef := engine.New(w.Shape()...)
			ref.Conv2DBackwardWeights(dwRef, dbRef, x, dy, p)
			for _, xv := range variants(t, b, x) {
				y := engine.New(yRef.Shape()...)
				b.Conv2D(y, xv, w, bb, p)
				check(t, b, name+" fwd x-layout "+fmt.Sprint(xv.Layout()), y, yRef, tol)
				for _, dyv := range variants(t, b, dy) {
					lay := fmt.Sprintf(" x-layout %d dy-layout %d", xv.Layout(), dyv.Layout())
					dx := engine.New(x.Shape()...)
					b.Conv2DBackwardData(dx, dyv, w, p)
					check(t, b, name+" bwd-data"+lay, dx, dxRef, tol)
					dw := engine.New(w.Shape()...)
					b.Conv2DBackwardWeights(dw, db, xv, dyv, p)
					check(t, b, name+" bwd-weights"+lay, dw, dwRef, tol)
					if bias {
						check(t, b, name+" bwd-bias"+lay, db, dbRef, tol)
					}
				}
			}
		}
	}
}

func TestBatchNorm(t *testing.T) { testBatchNorm(t, newBackend(t)) }

// TestBatchNormThreadModes checks batch norm on one thread, on the pool and
// in the timed choice between them (repeated so that auto mode runs both).
func TestBatchNormThreadModes(t *testing.T) {
	for _, m := range []string{"", "0", "1"} {
		t.Run("SIMCLR_DNNL_SERIAL_MEMOPS="+m, func(t *testing.T) {
			t.Setenv("SIMCLR_DNNL_SERIAL_MEMOPS", m)
			b := newBackend(t)
			for range 5 {
				testBatchNorm(t, b)
			}
		})
	}
}

func testBatchNorm(t *testing.T, b engine.Backend) {
	ref := engine.Reference()
	rng := rand.New(rand.NewPCG(2, 2))
	shapes := [][]int{{4, 16, 5, 3}, {2, 5, 3, 3}, {1, 32, 4, 4}, {6, 7}, {3, 16}}
	for _, s := range shapes {
		c := s[1]
		for _, train := range []bool{true, false} {
			for _, relu := range []bool{false, true} {
				name := fmt.Sprintf("%v/train=%v/relu=%v", s, train, relu)
				p := engine.BNParams{Eps: 1e-5, Train: train, ReLU: relu}
				x := randT(rng, s...)
				for i := range x.Raw() {
					x.Raw()[i] = x.Raw()[i]*2 + 0.5
				}
				gamma, beta := randT(rng, c), randT(rng, c)
				meanRef, varRef := randT(rng, c), randT(rng, c)
				for i := range varRef.Raw() {
					varRef.Raw()[i] = varRef.Raw()[i]*varRef.Raw()[i] + 0.5
				}
				mean0 := append([]float32(nil), meanRef.Raw()...)
				var0 := append([]float32(nil), varRef.Raw()...)
				yRef := engine.New(s...)
				ref.BatchNorm(yRef, x, gamma, beta, meanRef, varRef, p)
				dy := randT(rng, s...)
				dxRef, dgRef, dbRef := engine.New(s...), engine.New(c), engine.New(c)
				if train {
					ref.BatchNormBackward(dxRef, dgRef, dbRef, dy, x, yRef, gamma, meanRef, varRef, nil, p)
				} else {
					bnFrozenGrad(dxRef, dgRef, dbRef, dy, x, yRef, gamma, meanRef, varRef, p)
				}
				for _, xv := range variants(t, b, x) {
					mean := engine.FromData(append([]float32(nil), mean0...), c)
					variance := engine.FromData(append([]float32(nil), var0...), c)
					y := engine.New(s...)
					ws := b.BatchNorm(y, xv, gamma, beta, mean, variance, p)
					lay := fmt.Sprintf(" x-layout %d", xv.Layout())
					check(t, b, name+" y"+lay, y, yRef, tolDirect)
					check(t, b, name+" mean"+lay, mean, meanRef, tolDirect)
					check(t, b, name+" var"+lay, variance, varRef, tolDirect)
					for _, dyv := range variants(t, b, dy) {
						// Both the fused path (workspace) and the
						// fallback that masks with y (no workspace).
						for _, w := range []engine.Workspace{ws, nil} {
							lay := fmt.Sprintf("%s dy-layout %d ws=%v", lay, dyv.Layout(), w != nil)
							dx, dg, db := engine.New(s...), engine.New(c), engine.New(c)
							b.BatchNormBackward(dx, dg, db, dyv, xv, y, gamma, mean, variance, w, p)
							check(t, b, name+" dx"+lay, dx, dxRef, tolDirect)
							check(t, b, name+" dgamma"+lay, dg, dgRef, tolDirect)
							check(t, b, name+" dbeta"+lay, db, dbRef, tolDirect)
						}
					}
				}
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

func TestElementwise(t *testing.T) {
	b := newBackend(t)
	ref := engine.Reference()
	rng := rand.New(rand.NewPCG(3, 3))
	for _, s := range [][]int{{2, 16, 3, 5}, {3, 5, 2, 2}, {7, 9}, {11}} {
		a, c, dy := randT(rng, s...), randT(rng, s...), randT(rng, s...)
		yRef := engine.New(s...)
		ref.ReLU(yRef, a)
		dxRef := engine.New(s...)
		ref.ReLUBackward(dxRef, dy, yRef)
		for _, av := range variants(t, b, a) {
			y := engine.New(s...)
			b.ReLU(y, av)
			check(t, b, fmt.Sprintf("%v ReLU layout %d", s, av.Layout()), y, yRef, 0)
			for _, dyv := range variants(t, b, dy) {
				dx := engine.New(s...)
				b.ReLUBackward(dx, dyv, y)
				check(t, b, fmt.Sprintf("%v ReLUBackward layouts %d %d", s, y.Layout(), dyv.Layout()), dx, dxRef, 0)
			}
			for _, relu := range []bool{false, true} {
				sRef := engine.New(s...)
				ref.Add(sRef, a, c, relu)
				for _, cv := range variants(t, b, c) {
					sum := engine.New(s...)
					b.Add(sum, av, cv, relu)
					check(t, b, fmt.Sprintf("%v Add relu=%v layouts %d %d", s, relu, av.Layout(), cv.Layout()), sum, sRef, 0)
				}
			}
		}
	}
}

func TestPooling(t *testing.T) {
	b := newBackend(t)
	ref := engine.Reference()
	rng := rand.New(rand.NewPCG(4, 4))
	pools := []engine.PoolParams{{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, {KH: 2, KW: 2, StrideH: 2, StrideW: 2}}
	for _, s := range [][]int{{2, 16, 9, 8}, {1, 3, 7, 7}, {3, 8, 4, 6}} {
		x := randT(rng, s...)
		for _, p := range pools {
			oh, ow := (s[2]+2*p.PadH-p.KH)/p.StrideH+1, (s[3]+2*p.PadW-p.KW)/p.StrideW+1
			yRef := engine.New(s[0], s[1], oh, ow)
			wsRef := ref.MaxPool2D(yRef, x, p)
			dy := randT(rng, yRef.Shape()...)
			dxRef := engine.New(s...)
			ref.MaxPool2DBackward(dxRef, dy, wsRef, p)
			for _, xv := range variants(t, b, x) {
				name := fmt.Sprintf("%v %+v layout %d", s, p, xv.Layout())
				y := engine.New(yRef.Shape()...)
				ws := b.MaxPool2D(y, xv, p)
				check(t, b, name+" maxpool", y, yRef, 0)
				for _, dyv := range variants(t, b, dy) {
					dx := engine.New(s...)
					b.MaxPool2DBackward(dx, dyv, ws, p)
					check(t, b, fmt.Sprintf("%s maxpool bwd dy-layout %d", name, dyv.Layout()), dx, dxRef, tolDirect)
				}
			}
		}
		gRef := engine.New(s[0], s[1])
		ref.GlobalAvgPool(gRef, x)
		dg := randT(rng, s[0], s[1])
		dxRef := engine.New(s...)
		ref.GlobalAvgPoolBackward(dxRef, dg)
		for _, xv := range variants(t, b, x) {
			g := engine.New(s[0], s[1])
			b.GlobalAvgPool(g, xv)
			if g.Layout() != engine.Plain {
				t.Errorf("GlobalAvgPool output layout %d, want Plain", g.Layout())
			}
			check(t, b, fmt.Sprintf("%v gap layout %d", s, xv.Layout()), g, gRef, tolDirect)
		}
		dx := engine.New(s...)
		b.GlobalAvgPoolBackward(dx, dg)
		check(t, b, fmt.Sprintf("%v gap bwd", s), dx, dxRef, tolDirect)
	}
}

func TestMatMul(t *testing.T) {
	b := newBackend(t)
	ref := engine.Reference()
	rng := rand.New(rand.NewPCG(5, 5))
	const m, n, k = 7, 5, 13
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
				as, bs := []int{m, k}, []int{k, n}
				if ta {
					as = []int{k, m}
				}
				if tb {
					bs = []int{n, k}
				}
				a, bm, c0 := randT(rng, as...), randT(rng, bs...), randT(rng, m, n)
				want := engine.FromData(append([]float32(nil), c0.Raw()...), m, n)
				ref.MatMul(want, a, bm, ta, tb, ab[0], ab[1])
				got := engine.FromData(append([]float32(nil), c0.Raw()...), m, n)
				b.MatMul(got, a, bm, ta, tb, ab[0], ab[1])
				check(t, b, fmt.Sprintf("MatMul ta=%v tb=%v alpha,beta=%v", ta, tb, ab), got, want, tolDirect)
			}
		}
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
