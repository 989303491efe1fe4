package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

func refTape() *engine.Tape { return engine.NewTape(engine.Reference()) }

func randTensor(rng *rand.Rand, shape ...int) *engine.Tensor {
	t := engine.New(shape...)
	for i := range t.Data() {
		t.Data()[i] = float32(rng.NormFloat64())
	}
	return t
}

// copyOut copies a tape-owned tensor's values before the tape is reset.
func copyOut(tp *engine.Tape, t *engine.Tensor) []float32 {
	return slices.Clone(tp.Plain(t).Data())
}

// perturbBN gives every BN random γ, β and running statistics, so that
// tests see more than the identity-like fresh initialisation.
func perturbBN(rng *rand.Rand, m Module) {
	for _, p := range m.Params() {
		d := p.T.Data()
		switch p.Kind {
		case BNScale:
			for i := range d {
				d[i] = float32(0.5 + rng.Float64())
			}
		case BNShift:
			for i := range d {
				d[i] = float32(rng.Float64() - 0.5)
			}
		}
	}
	for _, b := range m.Buffers() {
		d := b.T.Data()
		switch {
		case strings.HasSuffix(b.Name, "running_mean"):
			for i := range d {
				d[i] = float32(0.2 * rng.NormFloat64())
			}
		case strings.HasSuffix(b.Name, "running_var"):
			for i := range d {
				d[i] = float32(0.5 + rng.Float64())
			}
		}
	}
}

func TestForwardShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, arch := range []string{"resnet18", "resnet34", "resnet50"} {
		for _, stem := range []string{"cifar", "imagenet"} {
			for _, w := range []float64{0.125, 0.25} {
				if testing.Short() && (arch == "resnet34" || w != 0.125) {
					continue
				}
				m, err := NewModel(ResNetConfig{Arch: arch, Width: w, Stem: stem}, HeadConfig{Version: "v2", Out: 32})
				if err != nil {
					t.Fatal(err)
				}
				size := 16
				if stem == "imagenet" {
					size = 40 // /2 conv, /2 pool, then /8: spatial 2x2 at layer4
				}
				tp := refTape()
				x := randTensor(rng, 3, 3, size, size)
				for _, train := range []bool{true, false} {
					h, z := m.ForwardHZ(tp, x, train)
					want := BaseChannels(w) * 8
					if arch == "resnet50" {
						want *= 4
					}
					if !slices.Equal(h.Shape(), []int{3, want}) || !slices.Equal(z.Shape(), []int{3, 32}) {
						t.Errorf("%s/%s/w%v train=%v: h %v z %v, want [3 %d] [3 32]", arch, stem, w, train, h.Shape(), z.Shape(), want)
					}
					if m.Encoder.OutDim() != want {
						t.Errorf("%s/%s/w%v: OutDim %d, want %d", arch, stem, w, m.Encoder.OutDim(), want)
					}
					for _, v := range copyOut(tp, z) {
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							t.Fatalf("%s/%s/w%v: non-finite output", arch, stem, w)
						}
					}
				}
				tp.Reset()
			}
		}
	}
}

func TestCheckInput(t *testing.T) {
	r, err := NewResNet(ResNetConfig{Arch: "resnet18", Width: 0.125, Stem: "cifar"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckInput([]int{2, 3, 8, 8}); err != nil {
		t.Errorf("valid input rejected: %v", err)
	}
	for _, s := range [][]int{{2, 1, 8, 8}, {2, 3, 8}, {2, 3}} {
		if err := r.CheckInput(s); err == nil {
			t.Errorf("input %v accepted", s)
		}
	}
	defer func() {
		if msg := fmt.Sprint(recover()); !strings.Contains(msg, "channels") {
			t.Errorf("Forward on a 1-channel input: panic %q, want one about channels", msg)
		}
	}()
	r.Forward(refTape(), engine.New(1, 1, 8, 8), false)
}

// BatchNorm against a plain-Go oracle: batch statistics in training mode,
// running statistics in eval mode, and PyTorch's running update
// (momentum 0.1, unbiased variance).
func TestBatchNormLayer(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, shape := range [][]int{{5, 3}, {2, 3, 4, 5}} {
		bn := newBatchNorm("bn", 3, false)
		perturbBN(rng, bn)
		x := randTensor(rng, shape...)
		for i := range x.Data() {
			x.Data()[i] = x.Data()[i]*2 + 1 // mean ≠ 0, var ≠ 1
		}
		rm0, rv0 := slices.Clone(bn.Stats.Mean.Data()), slices.Clone(bn.Stats.Var.Data())
		g, b := bn.Gamma.Data(), bn.Beta.Data()
		n, hw := shape[0], 1
		if len(shape) == 4 {
			hw = shape[2] * shape[3]
		}
		at := func(i, c, j int) int { return (i*3+c)*hw + j }
		mean, vb := make([]float64, 3), make([]float64, 3)
		for c := range 3 {
			for i := range n {
				for j := range hw {
					mean[c] += float64(x.Data()[at(i, c, j)])
				}
			}
			mean[c] /= float64(n * hw)
			for i := range n {
				for j := range hw {
					d := float64(x.Data()[at(i, c, j)]) - mean[c]
					vb[c] += d * d
				}
			}
			vb[c] /= float64(n * hw)
		}
		check := func(y *engine.Tensor, train, relu bool, mu, va []float64) {
			t.Helper()
			yd := y.Data()
			for i := range n {
				for c := range 3 {
					for j := range hw {
						want := float64(g[c])*(float64(x.Data()[at(i, c, j)])-mu[c])/math.Sqrt(va[c]+BNEps) + float64(b[c])
						if relu {
							want = max(want, 0)
						}
						if got := float64(yd[at(i, c, j)]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
							t.Fatalf("%v train=%v relu=%v: y[%d,%d,%d] = %v, want %v", shape, train, relu, i, c, j, got, want)
						}
					}
				}
			}
		}
		tp := refTape()
		// eval first: it must neither use nor change batch statistics
		run := make([]float64, 3)
		runv := make([]float64, 3)
		for c := range 3 {
			run[c], runv[c] = float64(rm0[c]), float64(rv0[c])
		}
		check(tp.Plain(bn.Forward(tp, x, false, false)), false, false, run, runv)
		check(tp.Plain(bn.Forward(tp, x, false, true)), false, true, run, runv)
		if !slices.Equal(bn.Stats.Mean.Data(), rm0) || !slices.Equal(bn.Stats.Var.Data(), rv0) || bn.Tracked != 0 {
			t.Fatalf("%v: eval forward changed running statistics or the counter", shape)
		}
		check(tp.Plain(bn.Forward(tp, x, true, true)), true, true, mean, vb)
		cnt := float64(n * hw)
		for c := range 3 {
			wantM := 0.9*float64(rm0[c]) + 0.1*mean[c]
			wantV := 0.9*float64(rv0[c]) + 0.1*vb[c]*cnt/(cnt-1)
			if gm, gv := float64(bn.Stats.Mean.Data()[c]), float64(bn.Stats.Var.Data()[c]); math.Abs(gm-wantM) > 1e-5 || math.Abs(gv-wantV) > 1e-5*(1+wantV) {
				t.Errorf("%v channel %d: running mean/var %v %v, want %v %v", shape, c, gm, gv, wantM, wantV)
			}
		}
		if bn.Tracked != 1 {
			t.Errorf("%v: num_batches_tracked %d after one training forward", shape, bn.Tracked)
		}
		tp.Reset()
	}
}

// In eval mode an image's h does not depend on the rest of the batch; in
// training mode it does (batch statistics). Training mode updates every
// running statistic, eval mode none.
func TestTrainEvalBehaviour(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, arch := range []string{"resnet18", "resnet50"} {
		r, err := NewResNet(ResNetConfig{Arch: arch, Width: 0.125, Stem: "cifar", Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		perturbBN(rng, r)
		x := randTensor(rng, 4, 3, 8, 8)
		first := engine.FromData(slices.Clone(x.Data()[:3*64]), 1, 3, 8, 8)
		tp := refTape()
		before := map[string][]float32{}
		for _, b := range r.Buffers() {
			before[b.Name] = slices.Clone(b.T.Data())
		}
		hb := copyOut(tp, r.Forward(tp, x, false))
		h1 := copyOut(tp, r.Forward(tp, first, false))
		d := r.OutDim()
		if !close32(hb[:d], h1, 1e-4) {
			t.Errorf("%s eval: image 0's h changes with the batch", arch)
		}
		for _, b := range r.Buffers() {
			if !slices.Equal(before[b.Name], b.T.Data()) {
				t.Fatalf("%s eval forward changed %s", arch, b.Name)
			}
		}
		tb := copyOut(tp, r.Forward(tp, x, true))
		if close32(tb[:d], hb[:d], 1e-2) {
			t.Errorf("%s: train-mode h equals eval-mode h", arch)
		}
		for _, b := range r.Buffers() {
			if slices.Equal(before[b.Name], b.T.Data()) {
				t.Errorf("%s train forward left %s unchanged", arch, b.Name)
			}
		}
		for _, c := range r.Counters() {
			if *c.N != 1 {
				t.Errorf("%s = %d after one training forward", c.Name, *c.N)
			}
		}
		// a different batch partner changes image 0's train-mode h
		y := randTensor(rng, 4, 3, 8, 8)
		copy(y.Data()[:3*64], x.Data()[:3*64])
		ty := copyOut(tp, r.Forward(tp, y, true))
		if close32(ty[:d], tb[:d], 1e-3) {
			t.Errorf("%s train: image 0's h ignores the rest of the batch", arch)
		}
		tp.Reset()
	}
}

func close32(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tol*(1+math.Abs(float64(b[i]))) {
			return false
		}
	}
	return true
}

func TestForwardDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randTensor(rng, 2, 3, 8, 8)
	var outs [][]float32
	for range 2 {
		m, err := NewModel(ResNetConfig{Arch: "resnet18", Width: 0.125, Stem: "cifar", Seed: 11}, HeadConfig{Version: "v1", Seed: 12})
		if err != nil {
			t.Fatal(err)
		}
		tp := refTape()
		outs = append(outs, copyOut(tp, m.Forward(tp, x, true)))
		tp.Reset()
	}
	if !slices.Equal(outs[0], outs[1]) {
		t.Error("two models from the same seeds gave different outputs")
	}
}

func ExampleNewModel() {
	m, err := NewModel(
		ResNetConfig{Arch: "resnet18", Width: 0.125, Stem: "cifar", Seed: 1},
		HeadConfig{Version: "v1", Seed: 2},
	)
	if err != nil {
		panic(err)
	}
	tp := engine.NewTape(engine.Reference())
	x := engine.New(4, 3, 32, 32) // a batch of 4 RGB 32x32 images
	h, z := m.ForwardHZ(tp, x, true)
	fmt.Println("h", h.Shape(), "z", z.Shape())
	fmt.Println("params", NumParams(m), "first", m.Params()[0].Name)
	fmt.Printf("%.4f GFLOP per image\n", float64(m.FLOPs(32, 32))/1e9)
	// Output:
	// h [4 64] z [4 128]
	// params 188360 first conv1.weight
	// 0.0178 GFLOP per image
}
