package optim

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// TestStepIsOneUpdate: Run takes exactly the step a hand-written loop takes
// (gradient of the loss, one SGD update, no accumulation from the previous
// step's gradients), calls AfterBackward between backward and update, and
// leaves the weights alone when the loss is not finite or forward fails.
func TestStepIsOneUpdate(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	ps := testParams(rng)
	w := ps[0].T // a weight: loss = 0.5 * scale * sum(w^2), gradient scale*w
	for _, p := range ps {
		p.T.SetRequiresGrad(true)
	}
	opt, err := NewSGD(ps, SGDConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	s := &Step{Tape: engine.NewTape(engine.Reference()), Opt: opt,
		AfterBackward: func() error { order = append(order, "afterBackward"); return nil }}
	scale := float32(1)
	forward := func(tp *engine.Tape) (*engine.Tensor, error) {
		order = append(order, "forward")
		return tp.Scale(tp.Sum(tp.Mul(w, w)), 0.5*scale), nil
	}
	for step := range 2 {
		before := slices.Clone(w.Data())
		var want float64
		for _, v := range before {
			want += 0.5 * float64(v) * float64(v)
		}
		l, err := s.Run(0.1, forward)
		if err != nil || math.Abs(float64(l)-want) > 1e-5*want {
			t.Fatalf("step %d: loss %v, %v; want %v", step, l, err, want)
		}
		for i, v := range w.Data() {
			if e := before[i] * 0.9; math.Abs(float64(v-e)) > 1e-6 {
				t.Fatalf("step %d: w[%d] = %v, want %v (w - 0.1 * grad)", step, i, v, e)
			}
		}
	}
	if want := []string{"forward", "afterBackward", "forward", "afterBackward"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}

	before := slices.Clone(w.Data())
	scale = float32(math.Inf(1))
	if _, err := s.Run(0.1, forward); !errors.Is(err, ErrNonFinite) {
		t.Errorf("infinite loss: %v", err)
	}
	boom := errors.New("boom")
	if _, err := s.Run(0.1, func(*engine.Tape) (*engine.Tensor, error) { return nil, boom }); err != boom {
		t.Errorf("forward error: %v", err)
	}
	s.AfterBackward = func() error { return boom }
	scale = 1
	if _, err := s.Run(0.1, forward); err != boom {
		t.Errorf("AfterBackward error: %v", err)
	}
	if !slices.Equal(w.Data(), before) {
		t.Error("a failed step changed the weights")
	}
}
