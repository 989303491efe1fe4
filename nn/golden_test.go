package nn

import (
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/dnnl"
)

// The PyTorch golden: testdata/forward_inputs.safetensors holds the weights
// of a Go-built ResNet-18 (width 1/8, CIFAR stem) with randomised BN
// parameters and running statistics, a v1 and a v2 head (v2's names
// prefixed "v2.") and an input batch. gen_forward_golden.py loads them into
// torchvision's resnet18 (with the CIFAR stem, fc = Identity) and
// nn.Sequential heads, and writes forward_golden.safetensors: eval- and
// train-mode outputs and the running statistics after the train forward.
//
// Regenerate (only when the format changes):
//
//	go test ./nn -run TestForwardGolden -args -write-golden-inputs
//	/usr/bin/python3 nn/testdata/gen_forward_golden.py
var writeGoldenInputs = flag.Bool("write-golden-inputs", false, "rewrite testdata/forward_inputs.safetensors")

const (
	goldenInputs = "forward_inputs.safetensors"
	goldenOut    = "forward_golden.safetensors"
)

func goldenModels(t *testing.T) (*ResNet, *Head, *Head) {
	t.Helper()
	enc, err := NewResNet(ResNetConfig{Arch: "resnet18", Width: 0.125, Stem: "cifar", Seed: 31})
	if err != nil {
		t.Fatal(err)
	}
	h1, err := NewHead(HeadConfig{Version: "v1", In: enc.OutDim(), Hidden: 32, Out: 16, Seed: 32})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := NewHead(HeadConfig{Version: "v2", In: enc.OutDim(), Hidden: 32, Out: 16, Seed: 33})
	if err != nil {
		t.Fatal(err)
	}
	return enc, h1, h2
}

type namedTensor struct {
	name string
	t    *engine.Tensor
}

func goldenState(enc *ResNet, h1, h2 *Head) []namedTensor {
	var out []namedTensor
	add := func(prefix string, m Module) {
		for _, p := range m.Params() {
			out = append(out, namedTensor{prefix + p.Name, p.T})
		}
		for _, b := range m.Buffers() {
			out = append(out, namedTensor{prefix + b.Name, b.T})
		}
	}
	add("", enc)
	add("", h1)
	add("v2.", h2)
	return out
}

func TestForwardGolden(t *testing.T) {
	if *writeGoldenInputs {
		enc, h1, h2 := goldenModels(t)
		rng := rand.New(rand.NewPCG(41, 42))
		perturbBN(rng, enc)
		perturbBN(rng, h1)
		perturbBN(rng, h2)
		ts := map[string]stTensor{"input": {[]int{4, 3, 16, 16}, randTensor(rng, 4, 3, 16, 16).Data()}}
		for _, s := range goldenState(enc, h1, h2) {
			ts[s.name] = stTensor{s.t.Shape(), s.t.Data()}
		}
		path := filepath.Join("testdata", goldenInputs)
		if err := writeST(path, ts); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; now run /usr/bin/python3 nn/testdata/gen_forward_golden.py", path)
	}
	t.Run("reference", func(t *testing.T) { forwardGolden(t, engine.Reference(), 2e-4) })
	t.Run("dnnl", func(t *testing.T) {
		b := dnnlBackend(t)
		// Winograd convolutions (the default where faster) are accurate to
		// ~1e-3 per layer; the golden runs 17 of them
		forwardGolden(t, b, 5e-3)
	})
}

func dnnlBackend(t testing.TB) engine.Backend {
	t.Helper()
	b, err := newDNNL()
	if err != nil {
		t.Skip(err)
	}
	return b
}

func newDNNL() (engine.Backend, error) {
	if !dnnl.Available() {
		return nil, errors.New("oneDNN not available in this build")
	}
	return dnnl.New(0)
}

// loadGolden builds the golden models with the stored weights (not the
// init, so the golden survives changes to the initialisers) and returns
// them with the input batch.
func loadGolden(t *testing.T) (*ResNet, *Head, *Head, []namedTensor, *engine.Tensor) {
	t.Helper()
	enc, h1, h2 := goldenModels(t)
	state := goldenState(enc, h1, h2)
	in, err := readST(filepath.Join("testdata", goldenInputs))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range state {
		v, ok := in[s.name]
		if !ok || !slices.Equal(v.shape, s.t.Shape()) {
			t.Fatalf("%s: %s missing or shaped %v, model has %v", goldenInputs, s.name, v.shape, s.t.Shape())
		}
		copy(s.t.Data(), v.data)
	}
	x, ok := in["input"]
	if !ok {
		t.Fatalf("%s lacks the input batch", goldenInputs)
	}
	return enc, h1, h2, state, engine.FromData(x.data, x.shape...)
}

func forwardGolden(t *testing.T, b engine.Backend, tol float64) {
	enc, h1, h2, state, x := loadGolden(t)
	gold, err := readST(filepath.Join("testdata", goldenOut))
	if err != nil {
		t.Fatal(err)
	}
	tp := engine.NewTape(b)
	defer tp.Reset()
	compare := func(name string, got *engine.Tensor) {
		t.Helper()
		want, ok := gold[name]
		if !ok {
			t.Fatalf("%s lacks %s", goldenOut, name)
		}
		if !slices.Equal(got.Shape(), want.shape) {
			t.Fatalf("%s: shape %v, PyTorch %v", name, got.Shape(), want.shape)
		}
		g := tp.Plain(got).Data()
		worst := 0.0
		for i := range g {
			d := math.Abs(float64(g[i])-float64(want.data[i])) / (1 + math.Abs(float64(want.data[i])))
			worst = max(worst, d)
		}
		if worst > tol {
			t.Errorf("%s: max relative difference from PyTorch %.3g", name, worst)
		}
		if testing.Verbose() && !strings.HasPrefix(name, "after_train") {
			t.Logf("%s: max relative difference from PyTorch %.3g", name, worst)
		}
	}
	h := enc.Forward(tp, x, false)
	compare("h_eval", h)
	compare("z1_eval", h1.Forward(tp, h, false))
	compare("z2_eval", h2.Forward(tp, h, false))
	h = enc.Forward(tp, x, true)
	compare("h_train", h)
	compare("z1_train", h1.Forward(tp, h, true))
	compare("z2_train", h2.Forward(tp, h, true))
	n := 0
	for _, s := range state {
		if strings.Contains(s.name, "running_") {
			compare("after_train."+s.name, s.t)
			n++
		}
	}
	if n != 2*(20+1+3) {
		t.Errorf("compared %d running statistics, want 48 (20 encoder BNs, 1+3 head BNs)", n)
	}
}

// The oneDNN backend computes the same training-step gradients as the
// Reference backend through the whole model (blocked layouts, fused ops).
func TestGradientsDNNLMatchReference(t *testing.T) {
	b := dnnlBackend(t)
	grads := func(b engine.Backend) map[string][]float32 {
		enc, h1, _, _, x := loadGolden(t)
		m := &Model{Encoder: enc, Head: h1}
		tp := engine.NewTape(b)
		defer tp.Reset()
		z := m.Forward(tp, x, true)
		r := randTensor(rand.New(rand.NewPCG(3, 3)), z.Shape()...)
		tp.Backward(tp.Sum(tp.Mul(z, r)))
		out := map[string][]float32{}
		for _, p := range m.Params() {
			out[p.Name] = slices.Clone(p.T.Grad().Data())
		}
		return out
	}
	want, got := grads(engine.Reference()), grads(b)
	for name, w := range want {
		scale, diff := 0.0, 0.0
		for i := range w {
			scale = max(scale, math.Abs(float64(w[i])))
			diff = max(diff, math.Abs(float64(got[name][i])-float64(w[i])))
		}
		// relative to the tensor's largest gradient; Winograd allowed
		if diff > 1e-2*max(scale, 1e-3) {
			t.Errorf("%s: oneDNN gradient differs from Reference by %.3g (largest %.3g)", name, diff, scale)
		}
	}
}
