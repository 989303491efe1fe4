package loss

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// supConCase is one case of testdata/supcon_vectors.json, PyTorch's float64
// values and gradients of the reference SupCon code (gen_supcon_goldens.py).
type supConCase struct {
	goldenCase
	Labels []int `json:"labels"`
}

func loadSupConGolden(t testing.TB) []supConCase {
	t.Helper()
	path := filepath.Join("testdata", "supcon_vectors.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var f struct {
		Cases []supConCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	if len(f.Cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	for _, c := range f.Cases {
		if len(c.Z1) != c.N || len(c.Z2) != c.N || len(c.GradZ1) != c.N || len(c.GradZ2) != c.N || len(c.Labels) != c.N {
			t.Fatalf("%s: case %s: row counts differ from N=%d", path, c.Name, c.N)
		}
	}
	return f.Cases
}

// evalSupCon runs SupCon and Backward on a fresh tape and returns the loss,
// the stats and a copy of ∂L/∂z.
func evalSupCon(b engine.Backend, zd []float32, labels []int, d int, tau float32) (float32, Stats, []float32) {
	return evalLoss(b, zd, 2*len(labels), d, func(tp *engine.Tape, z *engine.Tensor) (*engine.Tensor, Stats) {
		return SupCon(tp, z, labels, tau)
	})
}

// supConGroups is SupCon's relation, for the backend-free kernel.
func supConGroups(t testing.TB, labels []int) *groups {
	id := append(append([]int(nil), labels...), labels...)
	g, err := groupsOf(id)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestSupConGolden matches PyTorch's reference SupCon (values and
// gradients) through the tape on every backend and with the backend-free
// kernel, on both paths.
func TestSupConGolden(t *testing.T) {
	bothPaths(t, testSupConGolden)
}

func testSupConGolden(t *testing.T) {
	for _, c := range loadSupConGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			z := toF32(stack(c.Z1, c.Z2))
			want := stack(c.GradZ1, c.GradZ2)
			tau := float32(c.Temperature)
			// float32 logits carry ~1e-7/τ absolute error.
			rel := 1e-5 * math.Max(1, 0.1/c.Temperature)
			for _, b := range backends(t) {
				v, st, g := evalSupCon(b, z, c.Labels, c.D, tau)
				if !closeRel(float64(v), c.Loss, rel, 1e-6) || !closeRel(st.Loss, c.Loss, rel, 1e-6) {
					t.Errorf("%s: loss = %.9g (stats %.9g), want %.9g", b.Name(), v, st.Loss, c.Loss)
				}
				checkGrad(t, "dz "+b.Name(), g, want, 10*rel)
			}
			st, dz := runKernelGroups(naiveMatMul, z, supConGroups(t, c.Labels), c.D, tau, 1)
			if !closeRel(st.Loss, c.Loss, rel, 1e-6) {
				t.Errorf("kernel: loss = %.9g, want %.9g", st.Loss, c.Loss)
			}
			checkGrad(t, "dz kernel", dz, want, 10*rel)
		})
	}
}

// oracleContrastive is the loss of Contrastive straight from its definition
// in float64: normalise, all pairwise cosines over τ, mean over each
// anchor's positives of -log softmax over k ≠ i.
func oracleContrastive(z []float64, group []int, d int, tau float64) float64 {
	m := len(group)
	u := normalizeRows(z, d)
	var total float64
	for i := range m {
		s, lse := oracleLogits(u, i, m, d, tau)
		var l float64
		np := 0
		for k := range m {
			if k != i && group[k] == group[i] {
				l += lse - s[k]
				np++
			}
		}
		total += l / float64(np)
	}
	return total / float64(m)
}

// TestSupConFD checks value and gradient of the kernel against the float64
// definition and its finite differences on random labelled batches (few
// classes, one class alone, an upstream gradient other than 1), on both
// paths, and the whole op through the tape with the engine's own
// finite-difference check.
func TestSupConFD(t *testing.T) {
	bothPaths(t, testSupConFD)
}

func testSupConFD(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct {
		labels []int
		d      int
		tau    float64
	}{
		{[]int{0, 1, 0, 1, 2}, 4, 0.5},
		{[]int{3, 3, 3}, 5, 0.2},
		{[]int{0, 0, 1, 2, 1, 0, 7}, 3, 0.1},
		{[]int{5, 6}, 6, 1},
	} {
		id := append(append([]int(nil), tc.labels...), tc.labels...)
		z64 := randZ(rng, len(id), tc.d, 2)
		z := toF32(z64)
		for i, v := range z {
			z64[i] = float64(v)
		}
		const g = 0.75
		st, dz := runKernelGroups(naiveMatMul, z, supConGroups(t, tc.labels), tc.d, float32(tc.tau), g)
		want := oracleContrastive(z64, id, tc.d, tc.tau)
		if !closeRel(st.Loss, want, 1e-5, 0) {
			t.Errorf("labels %v tau %g: loss = %.9g, want %.9g", tc.labels, tc.tau, st.Loss, want)
		}
		wg := oracleGrad(func(z []float64) float64 { return oracleContrastive(z, id, tc.d, tc.tau) }, z64)
		for i := range wg {
			wg[i] *= g
		}
		checkGrad(t, fmt.Sprintf("dz labels %v", tc.labels), dz, wg, 2e-4)

		zt := enginetest.Rand(rng, len(id), tc.d)
		w := enginetest.Rand(rng, tc.d, tc.d)
		enginetest.CheckGrad(t, engine.Reference(), []*engine.Tensor{zt, w},
			func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
				l, _ := SupCon(tp, tp.Linear(in[0], in[1], nil), tc.labels, float32(tc.tau))
				return tp.Scale(l, 3)
			}, enginetest.DefaultTol)
	}
}

// TestSupConDistinctIsNTXent: with every label different SupCon's positives
// are NT-Xent's, and the one kernel must give the same bits.
func TestSupConDistinctIsNTXent(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(23, 24))
		const n, d = 70, 9
		z := toF32(randZ(rng, 2*n, d, 1))
		labels := make([]int, n)
		for i := range labels {
			labels[i] = 3*i + 1
		}
		v0, st0, g0 := evalNTXent(engine.Reference(), z, n, d, 0.3)
		v1, st1, g1 := evalSupCon(engine.Reference(), z, labels, d, 0.3)
		if v0 != v1 || st0 != st1 {
			t.Errorf("SupCon %v %+v, NT-Xent %v %+v", v1, st1, v0, st0)
		}
		for i := range g0 {
			if g0[i] != g1[i] {
				t.Fatalf("grad[%d]: SupCon %v, NT-Xent %v", i, g1[i], g0[i])
			}
		}
	})
}

// TestSupConStats checks accuracy and similarities where they are known:
// two classes of orthogonal directions, views of a class all parallel.
func TestSupConStats(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		const d = 4
		labels := []int{0, 1, 0, 1, 1} // images 0,2 point along e0; 1,3,4 along e1
		n := len(labels)
		z := make([]float32, 2*n*d)
		for r, c := range labels {
			z[r*d+c] = float32(r + 1)
			z[(r+n)*d+c] = 2
		}
		_, st, _ := evalSupCon(engine.Reference(), z, labels, d, 0.5)
		if st.Accuracy != 1 || math.Abs(st.PosSim-1) > 1e-6 || math.Abs(st.NegSim) > 1e-6 {
			t.Errorf("%+v, want accuracy 1, positive cos 1, negative cos 0", st)
		}
		// Anchor of class 0 (4 views): 3 positives at s = 2, 6 negatives at 0.
		l0 := -2 + math.Log(3*math.Exp(2)+6)
		// Class 1 (6 views): 5 positives at 2, 4 negatives.
		l1 := -2 + math.Log(5*math.Exp(2)+4)
		if want := (4*l0 + 6*l1) / 10; math.Abs(st.Loss-want) > 1e-6 {
			t.Errorf("loss %v, want %v", st.Loss, want)
		}
		// Turn view 1 of image 0 (class 0) to class 1's direction: that
		// anchor's most similar views are negatives, and for the six class-1
		// anchors it is a negative tied with their positives (strict: they
		// lose too). The other three class-0 anchors still win.
		z[0], z[1] = 0, 1
		_, st, _ = evalSupCon(engine.Reference(), z, labels, d, 0.5)
		if st.Accuracy != 0.3 {
			t.Errorf("accuracy %v, want 0.3 (3 of 10 anchors win)", st.Accuracy)
		}
	})
}

func TestContrastiveBadArguments(t *testing.T) {
	tp := engine.NewTape(engine.Reference())
	for _, tc := range []struct {
		f    func()
		want string
	}{
		{func() { Contrastive(tp, engine.New(4, 3), []int{0, 0, 1, 2}, 0.5) }, "group 1 has only row 2"},
		{func() { Contrastive(tp, engine.New(4, 3), []int{0, 0, 1}, 0.5) }, "3 groups for the 4 rows"},
		{func() { Contrastive(tp, engine.New(4), []int{0, 0, 1, 1}, 0.5) }, "not 2-D"},
		{func() { Contrastive(tp, engine.New(2, 3), []int{0, 0}, float32(math.NaN())) }, "temperature NaN"},
		{func() { SupCon(tp, engine.New(6, 3), []int{0, 1}, 0.5) }, "does not have 2N = 4 rows (2 labels)"},
		{func() { SupCon(tp, engine.New(2, 3), nil, 0.5) }, "2N = 0 rows (0 labels)"},
		{func() { SupCon(tp, engine.New(4, 3), []int{0, 1}, -1) }, "temperature -1"},
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tc.want) {
					t.Errorf("panic %v, want one containing %q", r, tc.want)
				}
			}()
			tc.f()
		}()
	}
}
