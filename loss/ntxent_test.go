package loss

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/dnnl"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// evalNTXent runs NTXent and Backward on a fresh tape and returns the loss,
// the stats and a copy of ∂L/∂z.
func evalNTXent(b engine.Backend, zd []float32, n, d int, tau float32) (float32, Stats, []float32) {
	return evalLoss(b, zd, 2*n, d, func(tp *engine.Tape, z *engine.Tensor) (*engine.Tensor, Stats) {
		return NTXent(tp, z, n, tau)
	})
}

// evalLoss is evalNTXent for any loss f of z [m, d].
func evalLoss(b engine.Backend, zd []float32, m, d int, f func(tp *engine.Tape, z *engine.Tensor) (*engine.Tensor, Stats)) (float32, Stats, []float32) {
	z := engine.FromData(append([]float32(nil), zd...), m, d)
	z.SetRequiresGrad(true)
	tp := engine.NewTape(b)
	l, st := f(tp, z)
	v := l.Item()
	tp.Backward(l)
	tp.Reset()
	return v, st, append([]float32(nil), z.Grad().Data()...)
}

// TestGoldenReference matches PyTorch's values and gradients through the
// tape on the Reference backend.
func TestGoldenReference(t *testing.T) {
	bothPaths(t, testGoldenReference)
}

func testGoldenReference(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			v, st, g := evalNTXent(engine.Reference(), toF32(stack(c.Z1, c.Z2)), c.N, c.D, float32(c.Temperature))
			if !closeRel(float64(v), c.Loss, 1e-5, 0) || !closeRel(st.Loss, c.Loss, 1e-5, 0) {
				t.Errorf("loss = %.9g (stats %.9g), want %.9g", v, st.Loss, c.Loss)
			}
			checkGrad(t, "dz", g, stack(c.GradZ1, c.GradZ2), 1e-5)
		})
	}
}

// TestCheckGrad is the engine's finite-difference check through the tape,
// with NT-Xent composed with other ops so the upstream gradient is not 1.
func TestCheckGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		n, d int
		tau  float32
	}{{1, 3, 0.5}, {3, 4, 0.5}, {4, 8, 0.2}, {6, 5, 1}} {
		z := enginetest.Rand(rng, 2*tc.n, tc.d)
		w := enginetest.Rand(rng, tc.d, tc.d)
		enginetest.CheckGrad(t, engine.Reference(), []*engine.Tensor{z, w},
			func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
				l, _ := NTXent(tp, tp.Linear(in[0], in[1], nil), tc.n, tc.tau)
				return tp.Scale(l, 3)
			}, enginetest.DefaultTol)
	}
}

// TestSmallTemperatureLargeNorms: τ = 0.05 (and 0.001, where exp of the
// raw logits would overflow float64) with rows of norm up to 1e6, and one row
// below eps, gives finite values and gradients that still match the float64
// definition.
func TestSmallTemperatureLargeNorms(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, d = 16, 32
	z := randZ(rng, 2*n, d, 1)
	for i := range 2 * n {
		s := math.Pow(10, float64(rng.IntN(7))) // 1 .. 1e6
		if i == 5 {
			s = 1e-20 // below NormEps: the eps branch
		}
		for j := range d {
			z[i*d+j] *= s
		}
	}
	// Make some positives near-parallel so their logits sit at 1/τ.
	for i := range 4 {
		for j := range d {
			z[(i+n)*d+j] = 3*z[i*d+j] + 1e-4*z[(i+n)*d+j]
		}
	}
	zf := toF32(z)
	for i, v := range zf {
		z[i] = float64(v)
	}
	for _, tau := range []float32{0.05, 0.001} {
		for _, b := range backends(t) {
			v, st, g := evalNTXent(b, zf, n, d, tau)
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s tau %v: loss %v", b.Name(), tau, v)
			}
			for i, x := range g {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("%s tau %v: grad[%d] = %v", b.Name(), tau, i, x)
				}
			}
			// float32 logits carry ~1e-7/τ absolute error.
			want := oracleLoss(z, n, d, float64(tau))
			if !closeRel(st.Loss, want, 1e-4, 0) {
				t.Errorf("%s tau %v: loss %.8g, want %.8g", b.Name(), tau, st.Loss, want)
			}
		}
	}
}

// TestStats checks accuracy and similarities on inputs where they are
// known, and accuracy against a direct count on random inputs.
func TestStats(t *testing.T) {
	bothPaths(t, testStats)
}

func testStats(t *testing.T) {
	const n, d = 3, 8
	// Orthogonal images, identical views: every positive wins with cos 1.
	z := make([]float32, 2*n*d)
	for i := range n {
		z[i*d+i] = 2
		z[(i+n)*d+i] = 5
	}
	v, st, _ := evalNTXent(engine.Reference(), z, n, d, 0.5)
	if st.Accuracy != 1 || math.Abs(st.PosSim-1) > 1e-6 || math.Abs(st.NegSim) > 1e-6 {
		t.Errorf("orthogonal: %+v, want accuracy 1, pos 1, neg 0", st)
	}
	// l_i = -2 + log(e^2 + 4e^0) for every anchor.
	if want := -2 + math.Log(math.Exp(2)+4); math.Abs(float64(v)-want) > 1e-6 {
		t.Errorf("orthogonal: loss %v, want %v", v, want)
	}
	// Collapse: all rows equal. No positive beats its negatives, and the
	// loss is log(2N-1).
	for i := range z {
		z[i] = 1
	}
	v, st, g := evalNTXent(engine.Reference(), z, n, d, 0.5)
	if st.Accuracy != 0 || math.Abs(float64(v)-math.Log(2*n-1)) > 1e-6 {
		t.Errorf("collapsed: loss %v, %+v; want log(5) and accuracy 0", v, st)
	}
	for _, x := range g {
		if math.Abs(float64(x)) > 1e-6 {
			t.Errorf("collapsed: gradient %v, want 0 (all rows equal)", x)
			break
		}
	}
	// Random: count anchors whose positive has the largest cosine.
	rng := rand.New(rand.NewPCG(7, 7))
	const rn, rd = 20, 4
	rz := randZ(rng, 2*rn, rd, 1)
	for i := range rn { // half the positives are close, half are not
		if i%2 == 0 {
			for j := range rd {
				rz[(i+rn)*rd+j] = rz[i*rd+j] + 0.3*rz[(i+rn)*rd+j]
			}
		}
	}
	_, st, _ = evalNTXent(engine.Reference(), toF32(rz), rn, rd, 0.3)
	u := normalizeRows(rz, rd)
	cos := func(a, b int) float64 {
		var s float64
		for j := range rd {
			s += u[a*rd+j] * u[b*rd+j]
		}
		return s
	}
	correct, pos := 0, 0.0
	for i := range 2 * rn {
		p := (i + rn) % (2 * rn)
		pos += cos(i, p)
		win := true
		for k := range 2 * rn {
			if k != i && k != p && cos(i, k) >= cos(i, p) {
				win = false
			}
		}
		if win {
			correct++
		}
	}
	if want := float64(correct) / (2 * rn); st.Accuracy != want || want == 0 || want == 1 {
		t.Errorf("random: accuracy %v, want %v (and strictly between 0 and 1)", st.Accuracy, want)
	}
	if want := pos / (2 * rn); math.Abs(st.PosSim-want) > 1e-5 {
		t.Errorf("random: mean positive cosine %v, want %v", st.PosSim, want)
	}
}

// TestBackendsAgree compares the oneDNN backend with Reference on a
// SimCLR-sized problem, where it is available.
func TestBackendsAgree(t *testing.T) {
	bothPaths(t, testBackendsAgree)
}

func testBackendsAgree(t *testing.T) {
	bs := backends(t)
	if len(bs) < 2 {
		t.Skip("oneDNN backend not available")
	}
	rng := rand.New(rand.NewPCG(8, 9))
	const n, d = 64, 128
	z := toF32(randZ(rng, 2*n, d, 1))
	for _, tau := range []float32{0.5, 0.1} {
		v0, _, g0 := evalNTXent(bs[0], z, n, d, tau)
		v1, _, g1 := evalNTXent(bs[1], z, n, d, tau)
		if !closeRel(float64(v1), float64(v0), 1e-5, 0) {
			t.Errorf("tau %v: loss %s %v, %s %v", tau, bs[1].Name(), v1, bs[0].Name(), v0)
		}
		checkGrad(t, "dz "+bs[1].Name(), g1, f64(g0), 1e-3)
	}
}

// TestManyTiles: with 2N = 200 rows E is built from several 64×64 tiles
// (the last partial) on several goroutines. The loss must match the float64
// definition, and the gradient the per-row path's and, on a sample of
// entries, the definition's finite differences.
func TestManyTiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	const n, d, tau = 100, 16, 0.2
	z64 := randZ(rng, 2*n, d, 1)
	z := toF32(z64)
	for i, v := range z {
		z64[i] = float64(v)
	}
	_, st, g := evalNTXent(engine.Reference(), z, n, d, tau)
	old := minSharedShiftTau
	minSharedShiftTau = float32(math.Inf(1))
	_, st2, g2 := evalNTXent(engine.Reference(), z, n, d, tau)
	minSharedShiftTau = old

	want := oracleLoss(z64, n, d, tau)
	if !closeRel(st.Loss, want, 1e-5, 0) || !closeRel(st2.Loss, want, 1e-5, 0) {
		t.Errorf("loss %.9g (per-row %.9g), want %.9g", st.Loss, st2.Loss, want)
	}
	if st.Accuracy != st2.Accuracy || math.Abs(st.PosSim-st2.PosSim) > 1e-6 || math.Abs(st.NegSim-st2.NegSim) > 1e-6 {
		t.Errorf("stats differ between paths: %+v vs %+v", st, st2)
	}
	checkGrad(t, "dz vs per-row", g, f64(g2), 1e-4)
	var scale float64
	for _, v := range g2 {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for range 8 {
		j := rng.IntN(len(z64))
		h := 1e-5
		v := z64[j]
		z64[j] = v + h
		lp := oracleLoss(z64, n, d, tau)
		z64[j] = v - h
		lm := oracleLoss(z64, n, d, tau)
		z64[j] = v
		if fd := (lp - lm) / (2 * h); !closeRel(float64(g[j]), fd, 1e-3, scale) {
			t.Errorf("grad[%d] = %.6g, finite difference %.6g", j, g[j], fd)
		}
	}
}

func TestBadArguments(t *testing.T) {
	tp := engine.NewTape(engine.Reference())
	for _, tc := range []struct {
		z    *engine.Tensor
		n    int
		tau  float32
		want string
	}{
		{engine.New(6, 4), 2, 0.5, "does not have 2N = 4 rows"},
		{engine.New(4, 4), 0, 0.5, "n = 0"},
		{engine.New(4, 2, 2), 2, 0.5, "not 2-D"},
		{engine.New(4, 4), 2, 0, "temperature 0"},
		{engine.New(4, 4), 2, float32(math.Inf(1)), "temperature +Inf"},
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tc.want) {
					t.Errorf("panic %v, want one containing %q", r, tc.want)
				}
			}()
			NTXent(tp, tc.z, tc.n, tc.tau)
		}()
	}
}

// backends returns Reference and, when it can be created, oneDNN.
func backends(t testing.TB) []engine.Backend {
	bs := []engine.Backend{engine.Reference()}
	if b, err := dnnl.New(2); err == nil {
		bs = append(bs, b)
	} else {
		t.Logf("oneDNN backend not available: %v", err)
	}
	return bs
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}
