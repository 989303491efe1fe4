package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFeatureSpectrum checks the spectrum against Σ = XᵀX/n computed with
// plain loops, and that M = (Σ+δI)^(-1/2) satisfies M(Σ+δI)M = I.
func TestFeatureSpectrum(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	n, dim := 1500, 7
	x, _ := learnableProblem(rng, n, dim, 3, 0.8)
	idx := []int{}
	for i := 0; i < n; i += 3 {
		idx = append(idx, i)
	}
	for _, rows := range [][]int{nil, idx} {
		s, err := NewFeatureSpectrum(x, n, dim, rows)
		if err != nil {
			t.Fatal(err)
		}
		use := rows
		if use == nil {
			for i := 0; i < n; i++ {
				use = append(use, i)
			}
		}
		sigma := make([]float64, dim*dim)
		for _, i := range use {
			for a := 0; a < dim; a++ {
				for b := 0; b < dim; b++ {
					sigma[a*dim+b] += float64(x[i*dim+a]) * float64(x[i*dim+b]) / float64(len(use))
				}
			}
		}
		back := s.matrix(0, 1)
		for i := range sigma {
			if math.Abs(back[i]-sigma[i]) > 1e-10 {
				t.Fatalf("subset %v: V Λ Vᵀ[%d] = %v, Σ = %v", rows != nil, i, back[i], sigma[i])
			}
		}
		const delta = 0.01
		m := s.matrix(delta, -0.5)
		for a := 0; a < dim; a++ {
			for b := 0; b < dim; b++ {
				v := 0.0 // (M (Σ+δI) M)[a,b]
				for i := 0; i < dim; i++ {
					for j := 0; j < dim; j++ {
						sd := sigma[i*dim+j]
						if i == j {
							sd += delta
						}
						v += m[a*dim+i] * sd * m[j*dim+b]
					}
				}
				want := 0.0
				if a == b {
					want = 1
				}
				if math.Abs(v-want) > 1e-9 {
					t.Errorf("subset %v: (M(Σ+δI)M)[%d,%d] = %v, want %v", rows != nil, a, b, v, want)
				}
			}
		}
	}
	if _, err := NewFeatureSpectrum(x, n, dim+1, nil); err == nil {
		t.Error("size mismatch: no error")
	}
}

// TestLogRegPreconditionSameOptimum: preconditioning changes the optimiser's
// coordinates, not the objective, so both runs reach the same loss and
// predictions, and on correlated features the preconditioned one needs far
// fewer passes.
func TestLogRegPreconditionSameOptimum(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	n, dim, classes := 3000, 24, 5
	x, y := learnableProblem(rng, n, dim, classes, 0.95)
	plain, ps, err := TrainLogReg(x, y, dim, classes, LogRegConfig{Lambda: 1e-4, NoPrecondition: true, GradTol: 1e-9, RelTol: -1, MaxIter: 3000})
	if err != nil {
		t.Fatal(err)
	}
	pre, qs, err := TrainLogReg(x, y, dim, classes, LogRegConfig{Lambda: 1e-4})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plain (strict): %d passes, loss %.10f; preconditioned (default): %d passes, loss %.10f", ps.Evaluations, ps.Loss, qs.Evaluations, qs.Loss)
	if math.Abs(qs.Loss-ps.Loss) > 1e-6*ps.Loss {
		t.Errorf("losses differ: preconditioned %v, plain %v", qs.Loss, ps.Loss)
	}
	if 3*qs.Evaluations > ps.Evaluations {
		t.Errorf("preconditioned fit took %d passes, plain %d", qs.Evaluations, ps.Evaluations)
	}
	a, b := argmaxRows(plain.Logits(x, n), classes), argmaxRows(pre.Logits(x, n), classes)
	diff := 0
	for i := range a {
		if a[i] != b[i] {
			diff++
		}
	}
	if diff > 0 {
		t.Errorf("%d of %d predictions differ", diff, n)
	}
}
