package optim

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/nn"
)

type optCase struct {
	name   string
	make   func([]nn.Param) (Optimizer, error)
	oracle func() oracle
	lr     float64
	quadLR float64 // for TestMinimisesQuadratic
}

// optCases lists every optimizer variant; decay false zeroes weight decay.
func optCases(decay bool) []optCase {
	lars := func(c LARSConfig) func([]nn.Param) (Optimizer, error) {
		return func(p []nn.Param) (Optimizer, error) { return NewLARS(p, c) }
	}
	sgd := func(c SGDConfig) func([]nn.Param) (Optimizer, error) {
		return func(p []nn.Param) (Optimizer, error) { return NewSGD(p, c) }
	}
	adam := func(c AdamConfig) func([]nn.Param) (Optimizer, error) {
		return func(p []nn.Param) (Optimizer, error) { return NewAdam(p, c) }
	}
	bigEta := LARSConfig{Momentum: 0.9, WeightDecay: 1e-2, Eta: 0.1}
	nest := LARSConfig{Momentum: 0.8, WeightDecay: 1e-3, Eta: 0.05, Nesterov: true}
	sm := SGDConfig{Momentum: 0.9, WeightDecay: 5e-4}
	sn := SGDConfig{Momentum: 0.9, WeightDecay: 1e-2, Nesterov: true, ExcludeFromDecay: true}
	sp := SGDConfig{WeightDecay: 1e-2}
	ad := AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2}
	aw := AdamWDefaults
	awx := AdamConfig{Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1, Decoupled: true, ExcludeFromDecay: true}
	if !decay {
		bigEta.WeightDecay, nest.WeightDecay = 0, 0
		sm.WeightDecay, sn.WeightDecay, sp.WeightDecay = 0, 0, 0
		ad.WeightDecay, aw.WeightDecay, awx.WeightDecay = 0, 0, 0
	}
	simclr := LARSDefaults
	if !decay {
		simclr.WeightDecay = 0
	}
	return []optCase{
		{"LARS/simclr", lars(simclr), func() oracle { return &larsOracle{cfg: simclr} }, 4.8, 10},
		{"LARS/bigEta", lars(bigEta), func() oracle { return &larsOracle{cfg: bigEta} }, 1, 0.1},
		{"LARS/nesterov", lars(nest), func() oracle { return &larsOracle{cfg: nest} }, 1, 0.2},
		{"SGD/momentum", sgd(sm), func() oracle { return &sgdOracle{cfg: sm} }, 0.1, 0.1},
		{"SGD/nesterov", sgd(sn), func() oracle { return &sgdOracle{cfg: sn} }, 0.1, 0.1},
		{"SGD/plain", sgd(sp), func() oracle { return &sgdOracle{cfg: sp} }, 0.1, 0.1},
		{"Adam", adam(ad), func() oracle { return &adamOracle{cfg: ad} }, 0.01, 0.05},
		{"AdamW", adam(aw), func() oracle { return &adamOracle{cfg: aw} }, 0.01, 0.05},
		{"AdamW/exclude", adam(awx), func() oracle { return &adamOracle{cfg: awx} }, 0.01, 0.05},
	}
}

// TestAgainstOracle runs four steps with changing learning rates and random
// gradients and compares the parameters' displacement and the state with
// the float64 oracle.
func TestAgainstOracle(t *testing.T) {
	for _, c := range optCases(true) {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			params := testParams(rng)
			opt, err := c.make(params)
			if err != nil {
				t.Fatal(err)
			}
			or := c.oracle()
			w0 := snapshot(params)
			w := snapshot(params)
			for _, f := range []float64{1, 0.5, 2, 0.25} {
				lr := c.lr * f
				g := randGrads(rng, params, 0.1)
				setGrads(params, g)
				opt.Step(float32(lr))
				g64 := make([][]float64, len(g))
				for i := range g {
					g64[i] = f64(g[i])
				}
				or.step(float64(float32(lr)), params, w, g64)
			}
			for i, p := range params {
				got := make([]float32, p.T.Len())
				want := make([]float64, p.T.Len())
				for j, v := range p.T.Data() {
					got[j] = float32(float64(v) - w0[i][j])
					want[j] = w[i][j] - w0[i][j]
				}
				if norm(want) == 0 {
					t.Fatalf("%s did not move in the oracle: the test would not test anything", p.Name)
				}
				checkClose(t, "displacement of "+p.Name, got, want, 2e-4)
			}
			st, wst := opt.StateTensors(), or.state(params)
			if len(st) != len(wst) {
				t.Fatalf("state has %d entries, want %d", len(st), len(wst))
			}
			for k, want := range wst {
				got, ok := st[k]
				if !ok {
					t.Fatalf("state lacks %q", k)
				}
				checkClose(t, "state "+k, got, want, 1e-5)
			}
		})
	}
}

// TestLARSExclusion checks by hand, on one step, that an excluded parameter
// (bias) gets a plain lr·g momentum step without decay, and that a weight
// gets lr·η·‖w‖/‖g+wd·w‖·(g+wd·w).
func TestLARSExclusion(t *testing.T) {
	cfg := LARSConfig{Momentum: 0.9, WeightDecay: 0.5, Eta: 0.01}
	w := engine.FromData([]float32{3, -4}, 2)
	b := engine.FromData([]float32{1, 2}, 2)
	params := []nn.Param{{Name: "w", T: w, Kind: nn.Weight}, {Name: "b", T: b, Kind: nn.Bias}}
	opt, err := NewLARS(params, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const lr = 2.0
	setGrads(params, [][]float32{{1, 1}, {0.5, -0.25}})
	opt.Step(lr)
	// Weight: d = g + 0.5·w = (2.5, -1); ‖w‖ = 5; trust = 0.01·5/‖d‖.
	d := []float64{2.5, -1}
	trust := 0.01 * 5 / math.Hypot(d[0], d[1])
	checkClose(t, "w", w.Data(), []float64{3 - lr*trust*d[0], -4 - lr*trust*d[1]}, 1e-6)
	// Bias: no decay, no trust ratio: b - lr·g.
	checkClose(t, "b", b.Data(), []float64{1 - lr*0.5, 2 + lr*0.25}, 1e-6)
	// Second step: momentum carries v1 = lr·g1 for the bias.
	setGrads(params, [][]float32{{0, 0}, {1, 1}})
	opt.Step(lr)
	checkClose(t, "b after 2 steps", b.Data(), []float64{0 - (0.9*1 + 2), 2.5 - (0.9*-0.5 + 2)}, 1e-6)
}

// TestLARSZeroNormGuards: a zero weight or a zero update direction uses
// trust ratio 1 instead of dividing by zero.
func TestLARSZeroNormGuards(t *testing.T) {
	w := engine.New(3) // ‖w‖ = 0
	u := engine.FromData([]float32{1, 2, 3}, 3)
	params := []nn.Param{{Name: "w", T: w, Kind: nn.Weight}, {Name: "u", T: u, Kind: nn.Weight}}
	opt, err := NewLARS(params, LARSConfig{Momentum: 0.9, Eta: 1e-3}) // no weight decay
	if err != nil {
		t.Fatal(err)
	}
	setGrads(params, [][]float32{{1, -1, 2}, {0, 0, 0}}) // ‖g‖ = 0 for u
	opt.Step(0.5)
	checkClose(t, "w", w.Data(), []float64{-0.5, 0.5, -1}, 1e-7)
	checkClose(t, "u", u.Data(), []float64{1, 2, 3}, 0)
}

// TestMinimisesQuadratic: every optimizer drives f(w) = ½Σ a_j (w_j - c_j)²
// down by orders of magnitude.
func TestMinimisesQuadratic(t *testing.T) {
	for _, c := range optCases(false) { // weight decay would move the minimum
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			const n = 20
			a, target := make([]float64, n), make([]float64, n)
			for j := range a {
				a[j] = 0.5 + rng.Float64()
				target[j] = 2 + rng.NormFloat64()
			}
			w := engine.New(n)
			params := []nn.Param{{Name: "w", T: w, Kind: nn.Weight}}
			for j := range w.Data() {
				w.Data()[j] = float32(rng.NormFloat64())
			}
			f := func() (float64, []float32) {
				var s float64
				g := make([]float32, n)
				for j, v := range w.Data() {
					d := float64(v) - target[j]
					s += 0.5 * a[j] * d * d
					g[j] = float32(a[j] * d)
				}
				return s, g
			}
			opt, err := c.make(params)
			if err != nil {
				t.Fatal(err)
			}
			f0, _ := f()
			lr := c.quadLR // LARS: lr·η·‖w‖ per step is what matters
			for range 1000 {
				_, g := f()
				setGrads(params, [][]float32{g})
				opt.Step(float32(lr))
			}
			f1, _ := f()
			if !(f1 < 1e-3*f0) {
				t.Errorf("f went from %.4g to %.4g: not minimised", f0, f1)
			}
		})
	}
}

// TestNilGradSkipped: a parameter Backward never reached keeps its value.
func TestNilGradSkipped(t *testing.T) {
	for _, c := range optCases(true) {
		rng := rand.New(rand.NewPCG(1, 1))
		params := testParams(rng)
		untouched := nn.Param{Name: "frozen", T: engine.FromData([]float32{1, 2}, 2), Kind: nn.Weight}
		opt, err := c.make(append(slices.Clone(params), untouched))
		if err != nil {
			t.Fatal(err)
		}
		setGrads(params, randGrads(rng, params, 1))
		opt.Step(float32(c.lr))
		if d := untouched.T.Data(); d[0] != 1 || d[1] != 2 {
			t.Errorf("%s: parameter without gradient changed to %v", c.name, d)
		}
	}
}

// TestStateRoundTrip: an optimizer restored from another's state continues
// exactly as the original would.
func TestStateRoundTrip(t *testing.T) {
	for _, c := range optCases(true) {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			pa := testParams(rng)
			pb := make([]nn.Param, len(pa))
			for i, p := range pa {
				pb[i] = p
				pb[i].T = engine.FromData(slices.Clone(p.T.Data()), p.T.Shape()...)
			}
			a, _ := c.make(pa)
			b, _ := c.make(pb)
			if len(a.StateTensors()) != 0 {
				t.Fatalf("state before the first step is not empty")
			}
			var g [][]float32
			for range 3 {
				g = randGrads(rng, pa, 0.1)
				setGrads(pa, g)
				a.Step(float32(c.lr))
			}
			saved := map[string][]float32{}
			for k, v := range a.StateTensors() {
				saved[k] = slices.Clone(v)
			}
			for i := range pa {
				copy(pb[i].T.Data(), pa[i].T.Data())
			}
			if err := b.LoadState(saved); err != nil {
				t.Fatal(err)
			}
			g = randGrads(rng, pa, 0.1)
			setGrads(pa, g)
			setGrads(pb, g)
			a.Step(float32(c.lr))
			b.Step(float32(c.lr))
			for i := range pa {
				if !slices.Equal(pa[i].T.Data(), pb[i].T.Data()) {
					t.Fatalf("%s differs after restore", pa[i].Name)
				}
			}
			// An empty state resets: b then takes a first step again.
			if err := b.LoadState(nil); err != nil || len(b.StateTensors()) != 0 {
				t.Fatalf("LoadState(nil): %v, %d entries", err, len(b.StateTensors()))
			}
		})
	}
}

func TestLoadStateErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	params := testParams(rng)
	lars, _ := NewLARS(params, LARSDefaults)
	adam, _ := NewAdam(params, AdamDefaults)
	setGrads(params, randGrads(rng, params, 1))
	adam.Step(0.1)
	lars.Step(0.1)
	good := map[string][]float32{}
	for k, v := range lars.StateTensors() {
		good[k] = slices.Clone(v)
	}
	before := slices.Clone(lars.StateTensors()["momentum/fc.bias"])

	missing := maps(good)
	delete(missing, "momentum/fc.bias")
	short := maps(good)
	short["momentum/conv1.weight"] = short["momentum/conv1.weight"][:3]
	extra := maps(good)
	extra["momentum/head.weight"] = []float32{1}
	badStep := map[string][]float32{}
	for k, v := range adam.StateTensors() {
		badStep[k] = v
	}
	badStep["step/fc.bias"] = []float32{1.5}

	for _, tc := range []struct {
		name string
		opt  Optimizer
		st   map[string][]float32
		want string
	}{
		{"missing", lars, missing, `no entry "momentum/fc.bias"`},
		{"size", lars, short, `"momentum/conv1.weight" has 3 values, parameter [4 3 3 3] has 108`},
		{"extra", lars, extra, `unexpected entries "momentum/head.weight"`},
		{"wrong optimizer", lars, adam.StateTensors(), `no entry "momentum/conv1.weight"`},
		{"step", adam, badStep, `"step/fc.bias" is [1.5]`},
	} {
		err := tc.opt.LoadState(tc.st)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %s", tc.name, err, tc.want)
		}
	}
	if !slices.Equal(before, lars.StateTensors()["momentum/fc.bias"]) {
		t.Errorf("a failed LoadState changed the state")
	}
}

func maps(m map[string][]float32) map[string][]float32 {
	out := make(map[string][]float32, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestConfigErrors(t *testing.T) {
	p := testParams(rand.New(rand.NewPCG(1, 2)))
	dup := append(slices.Clone(p), p[0])
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"no params", errOf(NewLARS(nil, LARSDefaults)), "no parameters"},
		{"dup", errOf(NewSGD(dup, SGDConfig{})), `"conv1.weight" appears twice`},
		{"unnamed", errOf(NewAdam([]nn.Param{{T: engine.New(1)}}, AdamDefaults)), "has no name"},
		{"nil tensor", errOf(NewAdam([]nn.Param{{Name: "x"}}, AdamDefaults)), `"x" has no tensor`},
		{"momentum", errOf(NewLARS(p, LARSConfig{Momentum: 1, Eta: 1e-3})), "momentum 1 is not in [0, 1)"},
		{"eta", errOf(NewLARS(p, LARSConfig{Momentum: 0.9})), "eta 0"},
		{"wd", errOf(NewSGD(p, SGDConfig{WeightDecay: -1})), "weight decay -1"},
		{"nesterov", errOf(NewSGD(p, SGDConfig{Nesterov: true})), "Nesterov"},
		{"beta", errOf(NewAdam(p, AdamConfig{Beta1: 1, Beta2: 0.9, Eps: 1e-8})), "beta 1"},
		{"eps", errOf(NewAdam(p, AdamConfig{Beta1: 0.9, Beta2: 0.9})), "eps 0"},
		{"nan", errOf(NewAdam(p, AdamConfig{Beta1: math.NaN(), Beta2: 0.9, Eps: 1})), "beta NaN"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, tc.err, tc.want)
		}
	}
}

func errOf[T any](_ T, err error) error { return err }

// TestStepDoesNotAllocate: after the first step (which creates the state),
// Step and ZeroGrad allocate nothing, also when parameters are updated on
// several goroutines.
func TestStepDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	var params []nn.Param
	for i := range 6 {
		t := engine.New(1 << 15)
		params = append(params, nn.Param{Name: string(rune('a' + i)), T: t, Kind: nn.ParamKind(i % 3)})
	}
	g := randGrads(rng, params, 1)
	for _, c := range optCases(true) {
		opt, err := c.make(params)
		if err != nil {
			t.Fatal(err)
		}
		setGrads(params, g)
		opt.Step(0.1)
		if n := testing.AllocsPerRun(5, func() { opt.Step(0.1); opt.ZeroGrad() }); n != 0 {
			t.Errorf("%s: %v allocations per Step", c.name, n)
		}
	}
}
