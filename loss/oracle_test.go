package loss

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// goldenFile is PyTorch's float64 NT-Xent values and gradients, copied from
// the project's shared test data (made by reference/ntxent_vectors.py).
type goldenFile struct {
	Definition string       `json:"definition"`
	Cases      []goldenCase `json:"cases"`
}

type goldenCase struct {
	Name          string      `json:"name"`
	N             int         `json:"N"`
	D             int         `json:"d"`
	Temperature   float64     `json:"temperature"`
	Z1            [][]float64 `json:"z1"`
	Z2            [][]float64 `json:"z2"`
	Loss          float64     `json:"loss"`
	PerAnchorLoss []float64   `json:"per_anchor_loss"`
	GradZ1        [][]float64 `json:"grad_z1"`
	GradZ2        [][]float64 `json:"grad_z2"`
}

func loadGolden(t testing.TB) []goldenCase {
	t.Helper()
	path := filepath.Join("testdata", "ntxent_vectors.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var f goldenFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	if len(f.Cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	for _, c := range f.Cases {
		if len(c.Z1) != c.N || len(c.Z2) != c.N || len(c.GradZ1) != c.N || len(c.GradZ2) != c.N || len(c.PerAnchorLoss) != 2*c.N {
			t.Fatalf("%s: case %s: row counts differ from N=%d", path, c.Name, c.N)
		}
	}
	out := f.Cases
	return out
}

// stack returns [a; b] flattened row-major.
func stack(a, b [][]float64) []float64 {
	var out []float64
	for _, r := range a {
		out = append(out, r...)
	}
	for _, r := range b {
		out = append(out, r...)
	}
	return out
}

func toF32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// oracleLoss is NT-Xent straight from its definition in float64: normalise,
// all pairwise cosines over τ, -log softmax of the positive over k ≠ i.
func oracleLoss(z []float64, n, d int, tau float64) float64 {
	m := 2 * n
	u := make([]float64, len(z))
	for i := range m {
		var ss float64
		for j := range d {
			ss += z[i*d+j] * z[i*d+j]
		}
		den := math.Max(math.Sqrt(ss), 1e-12)
		for j := range d {
			u[i*d+j] = z[i*d+j] / den
		}
	}
	return oracleLossU(u, n, d, tau)
}

// oracleLossU is the loss given already-normalised rows u (u is not
// renormalised, so its gradient is ∂L/∂u).
func oracleLossU(u []float64, n, d int, tau float64) float64 {
	m := 2 * n
	var total float64
	for i := range m {
		s, lse := oracleLogits(u, i, m, d, tau)
		total += -s[(i+n)%m] + lse
	}
	return total / float64(m)
}

// oracleLogits returns row i of S = U·Uᵀ/τ (m rows of d) and
// log Σ_{k≠i} exp(s_ik), in float64.
func oracleLogits(u []float64, i, m, d int, tau float64) ([]float64, float64) {
	s := make([]float64, m)
	mx := math.Inf(-1)
	for k := range m {
		var dot float64
		for j := range d {
			dot += u[i*d+j] * u[k*d+j]
		}
		s[k] = dot / tau
		if k != i {
			mx = math.Max(mx, s[k])
		}
	}
	var sum float64
	for k := range m {
		if k != i {
			sum += math.Exp(s[k] - mx)
		}
	}
	return s, mx + math.Log(sum)
}

// oracleGrad is the central finite difference of f (float64, h=1e-6).
func oracleGrad(f func([]float64) float64, z []float64) []float64 {
	g := make([]float64, len(z))
	zz := append([]float64(nil), z...)
	for i := range zz {
		h := 1e-6 * math.Max(1, math.Abs(zz[i]))
		v := zz[i]
		zz[i] = v + h
		lp := f(zz)
		zz[i] = v - h
		lm := f(zz)
		zz[i] = v
		g[i] = (lp - lm) / (2 * h)
	}
	return g
}

// naiveMatMul is a plain float64-accumulating GEMM with Backend.MatMul's
// contract, so the kernel can be checked without any backend.
func naiveMatMul(c, a, b *engine.Tensor, transA, transB bool, alpha, beta float32) {
	at := func(t *engine.Tensor, tr bool, i, j int) float32 {
		if tr {
			return t.Data()[j*t.Dim(1)+i]
		}
		return t.Data()[i*t.Dim(1)+j]
	}
	rows, inner := a.Dim(0), a.Dim(1)
	if transA {
		rows, inner = inner, rows
	}
	cols := c.Dim(1)
	cd := c.Data()
	for i := range rows {
		for j := range cols {
			var s float64
			for k := range inner {
				s += float64(at(a, transA, i, k)) * float64(at(b, transB, k, j))
			}
			cd[i*cols+j] = float32(float64(alpha)*s + float64(beta)*float64(cd[i*cols+j]))
		}
	}
}

// runKernel evaluates NT-Xent's loss and gradient (upstream gradient g)
// with the backend-free kernel.
func runKernel(mm matMul, z []float32, n, d int, tau, g float32) (Stats, []float32) {
	return runKernelGroups(mm, z, pairGroups(n), d, tau, g)
}

// runKernelGroups is runKernel for any positive relation.
func runKernelGroups(mm matMul, z []float32, gr *groups, d int, tau, g float32) (Stats, []float32) {
	m := len(gr.of)
	k := &kernel{m: m, d: d, tau: tau, mm: mm, pos: gr,
		u: engine.New(m, d), norms: engine.New(m), s: engine.New(m, m),
		invZ: engine.New(m), negP: engine.New(m)}
	st := k.forward(z)
	dz := engine.New(m, d)
	k.backward(g, dz)
	return st, dz.Data()
}

func randZ(rng *rand.Rand, m, d int, scale float64) []float64 {
	z := make([]float64, m*d)
	for i := range z {
		z[i] = scale * rng.NormFloat64()
	}
	return z
}

// closeRel reports whether got matches want to rel, relative to |want| but
// with a floor of rel·scale for entries near zero (scale = the largest
// |want| of the array), the usual norm-wise criterion for float32 results.
func closeRel(got, want, rel, scale float64) bool {
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), scale)
}

func maxAbs(x []float64) float64 {
	var m float64
	for _, v := range x {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

// checkGrad compares a float32 gradient with a float64 one entry by entry.
func checkGrad(t *testing.T, name string, got []float32, want []float64, rel float64) {
	t.Helper()
	scale := maxAbs(want)
	bad := 0
	for i := range want {
		if !closeRel(float64(got[i]), want[i], rel, scale) {
			if bad < 5 {
				t.Errorf("%s: grad[%d] = %.9g, want %.9g (max |grad| %.3g)", name, i, got[i], want[i], scale)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d gradient entries off by more than %g relative", name, bad, len(want), rel)
	}
}
