package eval

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/simclr-go/simclr/engine"
)

// BenchmarkLinearProbe: 10,000 x 128 features, 10 classes, the default
// 5-value L2 grid plus the final fit (CIFAR-10 with R18 w/4 is 5x the rows).
func BenchmarkLinearProbe(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	dim, classes := 128, 10
	means := make([][]float64, classes)
	for k := range means {
		means[k] = make([]float64, dim)
		for j := range means[k] {
			means[k][j] = 0.3 * rng.NormFloat64()
		}
	}
	trX, trY := blobs(rng, 10000, dim, classes, 1, means)
	teX, teY := blobs(rng, 2000, dim, classes, 1, means)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := LinearProbe(trX, trY, teX, teY, dim, classes, ProbeConfig{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLinearProbe50k is the CIFAR-10 size of linear-eval: 50,000 x 128
// train and 10,000 test features, 10 classes, correlated features (as
// embeddings are, which makes L-BFGS work harder), the default protocol (5
// lambdas on a 10% validation split, then the refit), with the float64 gonum
// products and, when built with oneDNN, the float32 oneDNN ones. It reports
// passes over the data and CPU seconds per probe besides wall time.
func BenchmarkLinearProbe50k(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	dim, classes := 128, 10
	x, y := learnableProblem(rng, 60000, dim, classes, 0.9)
	trX, trY, teX, teY := x[:50000*dim], y[:50000], x[50000*dim:], y[50000:]
	cases := []struct {
		name string
		be   engine.Backend
	}{{"float64-gonum", nil}}
	for name, be := range backends(b) {
		if name != "reference" {
			cases = append(cases, struct {
				name string
				be   engine.Backend
			}{"float32-" + name, be})
		}
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var passes int
			var top1 float64
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				res, err := LinearProbe(trX, trY, teX, teY, dim, classes, ProbeConfig{Seed: 1, Backend: c.be})
				if err != nil {
					b.Fatal(err)
				}
				passes, top1 = res.Evaluations, res.Top1
			}
			b.ReportMetric(float64(passes), "passes/op")
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(top1, "top1")
		})
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTSNE2000 is twice the default --tsne size (cost grows as n²).
func BenchmarkTSNE2000(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	n, dim := 2000, 64
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := TSNE(x, n, dim, TSNEConfig{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
