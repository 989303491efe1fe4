package eval

import (
	"math/rand/v2"
	"testing"
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
