package optim

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

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
	c0 := processCPU()
	for b.Loop() {
		opt.Step(0.1)
	}
	b.ReportMetric(float64(n), "params")
	b.ReportMetric((processCPU()-c0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
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

// processCPU is the CPU time of the process, steadier than wall time on a
// shared machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
