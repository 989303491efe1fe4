package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// End-to-end gradient checks of tiny SimCLR networks against central finite
// differences of L = Σ z ⊙ R (R fixed and random), evaluated in float64 from
// the float32 forward. They check the model's wiring (which tensor feeds
// which op, fused ReLUs, residual adds, downsample branches, heads, BN in
// both modes); the ops themselves are checked op by op in package engine.
//
// A ResNet is only piecewise smooth: a finite difference is wrong wherever
// a ReLU kink lies within the step, and in training mode batch norm over
// few values adds strong curvature; small steps instead drown in float32
// rounding. Each probe therefore tries several steps, largest first, each
// with central and one-sided differences, and passes if any of them matches
// the analytic gradient. A wrong gradient matches none. The allowed error is relative (2%), plus a tenth of
// the tensor's RMS gradient and the float32 rounding noise of L over 2h, so
// that near-zero coordinates (such as the bias of a Linear followed by BN,
// whose true gradient is 0) are not judged on noise.
func TestGradientFiniteDifferences(t *testing.T) {
	cases := []struct {
		name  string
		cfg   ResNetConfig
		head  string
		n     int
		train bool
		steps []float64
	}{
		// training-mode BN through basic blocks; width 1/32 (2-4-8-16
		// channels) keeps the net smooth enough, batch 8 gives layer4's BNs
		// (1x1 spatial) 8 values
		{"resnet18_v1_train", ResNetConfig{Arch: "resnet18", Width: 1.0 / 32, Stem: "cifar", Seed: 5}, "v1", 8, true, []float64{1e-3, 3e-4, 1e-4, 3e-5}},
		{"resnet18_v2_train", ResNetConfig{Arch: "resnet18", Width: 1.0 / 32, Stem: "cifar", Seed: 7}, "v2", 8, true, []float64{1e-3, 3e-4, 1e-4, 3e-5}},
		// eval-mode BN through bottlenecks: L is piecewise linear in each
		// weight, so large steps are exact between kinks
		{"resnet50_v2_eval", ResNetConfig{Arch: "resnet50", Width: 1.0 / 32, Stem: "cifar", Seed: 5}, "v2", 8, false, []float64{1e-2, 3e-3, 1e-3, 3e-4}},
		// the ImageNet stem's max-pool
		{"resnet18_imagenet_eval", ResNetConfig{Arch: "resnet18", Width: 1.0 / 32, Stem: "imagenet", Seed: 5}, "v1", 4, false, []float64{1e-2, 3e-3, 1e-3, 3e-4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			perTensor := 3
			if testing.Short() {
				perTensor = 1
			}
			gradCheck(t, c.cfg, c.head, c.n, c.train, c.steps, perTensor)
		})
	}
}

func gradCheck(t *testing.T, cfg ResNetConfig, head string, n int, train bool, steps []float64, perTensor int) {
	rng := rand.New(rand.NewPCG(21, 22))
	m, err := NewModel(cfg, HeadConfig{Version: head, Hidden: 8, Out: 4, Seed: cfg.Seed + 1})
	if err != nil {
		t.Fatal(err)
	}
	// random γ, β and running statistics: fewer units sit on a ReLU kink
	// than with β = 0, and eval mode is not the identity
	perturbBN(rng, m)
	size := 8
	if cfg.Stem == "imagenet" {
		size = 32
	}
	x := randTensor(rng, n, 3, size, size)
	x.SetRequiresGrad(true)
	r := randTensor(rng, n, 4)
	tp := refTape()

	// sumAbs = Σ|z·R| sizes the float32 rounding noise of L
	var sumAbs float64
	loss := func() float64 {
		z := tp.Plain(m.Forward(tp, x, train))
		var s float64
		sumAbs = 0
		for i, v := range z.Data() {
			s += float64(v) * float64(r.Data()[i])
			sumAbs += math.Abs(float64(v) * float64(r.Data()[i]))
		}
		tp.Reset()
		return s
	}
	loss()
	// rounding noise of a central difference with step s
	noise := func(s float64) float64 { return 4 * 0x1p-24 * sumAbs / (2 * s) }
	z := m.Forward(tp, x, train)
	tp.Backward(tp.Sum(tp.Mul(z, r)))
	tp.Reset()

	probes := append([]Param{{Name: "input", T: x}}, m.Params()...)
	const tol = 0.02
	total, bad, worst := 0, 0, 0.0
	for _, p := range probes {
		g := p.T.Grad()
		if g == nil {
			t.Errorf("%s: no gradient after Backward", p.Name)
			continue
		}
		rms := 0.0
		for _, v := range g.Data() {
			rms += float64(v) * float64(v)
		}
		rms = math.Sqrt(rms / float64(g.Len()))
		badHere := 0
		for range perTensor {
			i := rng.IntN(p.T.Len())
			an := float64(g.Data()[i])
			best := math.Inf(1) // |error| / allowed error, at the best estimate
			var fds []float64
			l0 := loss()
			for _, h := range steps {
				// central, right and left differences: between ReLU kinks
				// the network is smooth (piecewise linear in eval mode), so
				// with a kink just to one side the other side's one-sided
				// difference is still right
				c, rt, lt, s := diffs(p.T.Data(), i, h, l0, loss)
				for k, fd := range []float64{c, rt, lt} {
					nz := noise(s)
					if k > 0 {
						nz *= 2 // one-sided: L differences over s, not 2s
					}
					allowed := tol*max(math.Abs(an), math.Abs(fd), 0.1*rms) + nz
					best = min(best, math.Abs(an-fd)/allowed)
				}
				fds = append(fds, c)
				if best <= 1 {
					break
				}
			}
			total++
			worst = max(worst, best)
			if best > 1 {
				bad++
				badHere++
				t.Logf("%s[%d]: analytic %.6g, finite differences %.6g at steps %v", p.Name, i, an, fds, steps)
			}
		}
		if badHere >= 2 {
			t.Errorf("%s: %d of %d probes disagree with finite differences", p.Name, badHere, perTensor)
		}
	}
	t.Logf("%d probes, %d disagree at every step, worst error/allowed %.3g", total, bad, worst)
	// isolated misses are kinks; more than 2% is not
	if bad > total/50 {
		t.Errorf("%d of %d probes disagree with finite differences", bad, total)
	}
}

// diffs perturbs coordinate i of w by ±s, s = h·max(1, |w_i|), and
// returns the central, right and left differences (dividing by the float32
// steps actually taken) and s; l0 is L at the unperturbed point. It
// restores w.
func diffs(w []float32, i int, h, l0 float64, loss func() float64) (central, right, left, s float64) {
	w0 := w[i]
	st := float32(h * max(1, math.Abs(float64(w0))))
	w[i] = w0 + st
	up, lp := float64(w[i]), loss()
	w[i] = w0 - st
	dn, lm := float64(w[i]), loss()
	w[i] = w0
	x0 := float64(w0)
	return (lp - lm) / (up - dn), (lp - l0) / (up - x0), (l0 - lm) / (x0 - dn), float64(st)
}
