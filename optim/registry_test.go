package optim

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// New builds each named optimizer with the settings it was given: the same
// kind and configuration as its own constructor.
func TestNewByName(t *testing.T) {
	ps := testParams(rand.New(rand.NewPCG(1, 2)))
	s := Settings{Momentum: 0.8, WeightDecay: 1e-4, Nesterov: false}
	for _, name := range Names() {
		o, err := New(name, ps, s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch o := o.(type) {
		case *LARS:
			if name != "lars" || o.cfg != (LARSConfig{Momentum: 0.8, WeightDecay: 1e-4, Eta: LARSEta}) {
				t.Errorf("%s: %T %+v", name, o, o.cfg)
			}
		case *SGD:
			if name != "sgd" || o.cfg != (SGDConfig{Momentum: 0.8, WeightDecay: 1e-4}) {
				t.Errorf("%s: %T %+v", name, o, o.cfg)
			}
		case *Adam:
			want := AdamDefaults
			if name == "adamw" {
				want = AdamWDefaults
			}
			want.Beta1, want.WeightDecay = 0.8, 1e-4
			if (name != "adam" && name != "adamw") || o.cfg != want {
				t.Errorf("%s: %T %+v, want %+v", name, o, o.cfg, want)
			}
		default:
			t.Errorf("%s: %T", name, o)
		}
	}
	if _, err := New("rmsprop", ps, s); err == nil || !strings.Contains(err.Error(), "rmsprop") {
		t.Errorf("unknown optimizer: %v", err)
	}
}

func TestCheckSettings(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{CheckName("lamb"), "lars|sgd|adam|adamw"},
		{CheckMomentum(1), "momentum 1"},
		{CheckWeightDecay(-1), "weight decay -1"},
		{CheckNesterov("adam", true, 0.9), "only for optimizers sgd and lars"},
		{CheckNesterov("sgd", true, 0), "needs momentum > 0"},
		{CheckScaling("log"), "linear, sqrt, none"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%v, want an error containing %q", c.err, c.want)
		}
	}
	for _, err := range []error{CheckName("adamw"), CheckMomentum(0), CheckWeightDecay(0), CheckNesterov("lars", true, 0.9), CheckNesterov("adam", false, 0), CheckScaling("sqrt")} {
		if err != nil {
			t.Error(err)
		}
	}
}
