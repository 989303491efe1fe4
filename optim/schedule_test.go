package optim

import (
	"math"
	"strings"
	"testing"
)

func TestSchedulePeak(t *testing.T) {
	for _, tc := range []struct {
		s    Schedule
		want float64
	}{
		{Schedule{Base: 0.3, Scaling: "linear", Batch: 4096}, 4.8},   // SimCLR ImageNet
		{Schedule{Base: 0.3, Scaling: "linear", Batch: 256}, 0.3},    //
		{Schedule{Base: 0.075, Scaling: "sqrt", Batch: 4096}, 4.8},   // 0.075·64
		{Schedule{Base: 0.075, Scaling: "sqrt", Batch: 256}, 1.2},    // 0.075·16
		{Schedule{Base: 0.5, Scaling: "none", Batch: 1024}, 0.5},     //
		{Schedule{Base: 1.0, Scaling: "linear", Batch: 64}, 1.0 / 4}, //
	} {
		if got := tc.s.Peak(); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%+v: peak %v, want %v", tc.s, got, tc.want)
		}
	}
}

// TestScheduleKeySteps checks warm-up and cosine values at the steps where
// they are known in closed form.
func TestScheduleKeySteps(t *testing.T) {
	s := Schedule{Base: 0.3, Scaling: "linear", Batch: 512, WarmupSteps: 10, TotalSteps: 110}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	peak := 0.6
	for _, tc := range []struct {
		step int
		want float64
	}{
		{-1, 0},
		{0, 0},                              // warm-up starts from 0
		{1, peak / 10},                      //
		{5, peak / 2},                       //
		{9, peak * 9 / 10},                  //
		{10, peak},                          // end of warm-up: cos(0)
		{35, peak * (1 + math.Sqrt2/2) / 2}, // a quarter of the decay: cos(π/4)
		{60, peak / 2},                      // half-way: cos(π/2)
		{85, peak * (1 - math.Sqrt2/2) / 2}, // cos(3π/4)
		{110, 0},                            // end
		{1000, 0},                           // after the end
	} {
		if got := s.LR(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LR(%d) = %v, want %v", tc.step, got, tc.want)
		}
	}
	// Monotone: up during warm-up, down after.
	for i := 1; i <= 110; i++ {
		d := s.LR(i) - s.LR(i-1)
		if (i <= 10 && d <= 0) || (i > 10 && d >= 0) {
			t.Fatalf("LR not monotone at step %d: %v -> %v", i, s.LR(i-1), s.LR(i))
		}
	}
	// No warm-up: cosine from the peak at step 0.
	s0 := Schedule{Base: 0.1, Scaling: "none", TotalSteps: 4}
	for i, want := range []float64{0.1, 0.1 * (1 + math.Sqrt2/2) / 2, 0.05, 0.1 * (1 - math.Sqrt2/2) / 2, 0} {
		if got := s0.LR(i); math.Abs(got-want) > 1e-12 {
			t.Errorf("no warm-up: LR(%d) = %v, want %v", i, got, want)
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	for _, tc := range []struct {
		s    Schedule
		want string
	}{
		{Schedule{Base: 0.3, Scaling: "cubic", Batch: 1, TotalSteps: 1}, `scaling "cubic"`},
		{Schedule{Base: -1, Scaling: "none", TotalSteps: 1}, "base learning rate -1"},
		{Schedule{Base: math.NaN(), Scaling: "none", TotalSteps: 1}, "base learning rate NaN"},
		{Schedule{Base: 0.3, Scaling: "linear", TotalSteps: 1}, "batch size 0"},
		{Schedule{Base: 0.3, Scaling: "none", WarmupSteps: 5, TotalSteps: 4}, "total steps 4 fewer than warm-up steps 5"},
		{Schedule{Base: 0.3, Scaling: "none", WarmupSteps: -1, TotalSteps: 4}, "-1 warm-up steps"},
	} {
		err := tc.s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.s, err, tc.want)
		}
	}
}
