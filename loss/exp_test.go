package loss

import (
	"math"
	"testing"
)

func TestExpNeg(t *testing.T) {
	worst := 0.0
	for i := 0; i <= 2_000_000; i++ {
		x := -750 * float64(i) / 2_000_000
		got, want := expNeg(x), math.Exp(x)
		if x < -708 { // float64's normal range ends; exactly 0 is fine
			if got != 0 || want > 4e-308 {
				t.Fatalf("expNeg(%v) = %v (math.Exp %v), want 0", x, got, want)
			}
			continue
		}
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 1e-9 {
		t.Errorf("largest relative error %.3g over [-750, 0], want < 1e-9", worst)
	}
	for _, x := range []float64{0, -1e-300, -0.5, math.Ln2 / 2, -707.9} {
		if got, want := expNeg(x), math.Exp(x); math.Abs(got-want) > 1e-9*want {
			t.Errorf("expNeg(%v) = %v, want %v", x, got, want)
		}
	}
	if expNeg(math.Inf(-1)) != 0 || !math.IsNaN(expNeg(math.NaN())) || expNeg(2) != math.Exp(2) {
		t.Errorf("special values: %v %v %v", expNeg(math.Inf(-1)), expNeg(math.NaN()), expNeg(2))
	}
}

func BenchmarkExp(b *testing.B) {
	xs := make([]float64, 4096)
	for i := range xs {
		xs[i] = -40 * float64(i) / 4096
	}
	b.Run("math.Exp", func(b *testing.B) {
		var s float64
		for b.Loop() {
			for _, x := range xs {
				s += math.Exp(x)
			}
		}
		_ = s
	})
	b.Run("expNeg", func(b *testing.B) {
		var s float64
		for b.Loop() {
			for _, x := range xs {
				s += expNeg(x)
			}
		}
		_ = s
	})
}
