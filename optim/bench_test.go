package optim

import (
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/nn"
)

// resnet18Params is the parameter set of a CIFAR-stem ResNet-18 encoder
// (11,168,832 floats) with random gradients.
func resnet18Params(b *testing.B) []nn.Param {
	r, err := nn.NewResNet(nn.ResNetConfig{Arch: "resnet18", Width: 1, Stem: "cifar"})
	if err != nil {
		b.Fatal(err)
	}
	params := r.Params()
	setGrads(params, randGrads(rand.New(rand.NewPCG(1, 2)), params, 1e-3))
	return params
}

func benchStep(b *testing.B, mk func([]nn.Param) (Optimizer, error)) {
	params := resnet18Params(b)
	opt, err := mk(params)
	if err != nil {
		b.Fatal(err)
	}
	opt.Step(0.1) // creates the state
	n := nn.NumParams(r18(params))
	b.SetBytes(int64(4 * n))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		opt.Step(0.1)
	}
	b.ReportMetric(float64(n), "params")
}

type r18 []nn.Param

func (p r18) Params() []nn.Param   { return p }
func (p r18) Buffers() []nn.Buffer { return nil }

// BenchmarkLARSResNet18 is one LARS step over ResNet-18's 11.2M parameters
// (the reference measures "LARS step < 0.5 %" of a PyTorch training step).
func BenchmarkLARSResNet18(b *testing.B) {
	benchStep(b, func(p []nn.Param) (Optimizer, error) { return NewLARS(p, LARSDefaults) })
}

func BenchmarkSGDResNet18(b *testing.B) {
	benchStep(b, func(p []nn.Param) (Optimizer, error) {
		return NewSGD(p, SGDConfig{Momentum: 0.9, WeightDecay: 5e-4})
	})
}

func BenchmarkAdamWResNet18(b *testing.B) {
	benchStep(b, func(p []nn.Param) (Optimizer, error) { return NewAdam(p, AdamWDefaults) })
}
