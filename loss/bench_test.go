package loss

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// BenchmarkNTXent is one forward+backward at d=128, the setting of
// ../shared/reference/RESULTS.md's NT-Xent table (PyTorch + OpenBLAS, 2
// threads: 5.3 ms at N=256, 59.2 ms at N=1024, 1280 ms at N=4096).
func BenchmarkNTXent(b *testing.B) {
	for _, be := range backends(b) {
		for _, n := range []int{256, 1024, 4096} {
			if n == 4096 && (testing.Short() || be.Name() == "reference") {
				continue // 51 GFLOP of GEMM: minutes on the plain-Go backend
			}
			b.Run(fmt.Sprintf("%s/N=%d", be.Name(), n), func(b *testing.B) {
				const d = 128
				z := engine.FromData(toF32(randZ(rand.New(rand.NewPCG(1, 2)), 2*n, d, 1)), 2*n, d)
				z.SetRequiresGrad(true)
				tp := engine.NewTape(be)
				b.ReportAllocs()
				for b.Loop() {
					z.ZeroGrad()
					l, _ := NTXent(tp, z, n, 0.5)
					tp.Backward(l)
					tp.Reset()
				}
			})
		}
	}
}

// BenchmarkNTXentForward is the forward pass alone (no_grad in PyTorch:
// 1.6 ms at N=256, 19.5 ms at N=1024).
func BenchmarkNTXentForward(b *testing.B) {
	for _, be := range backends(b) {
		for _, n := range []int{256, 1024} {
			b.Run(fmt.Sprintf("%s/N=%d", be.Name(), n), func(b *testing.B) {
				const d = 128
				z := engine.FromData(toF32(randZ(rand.New(rand.NewPCG(1, 2)), 2*n, d, 1)), 2*n, d)
				tp := engine.NewTape(be)
				tp.SetGrad(false)
				for b.Loop() {
					NTXent(tp, z, n, 0.5)
					tp.Reset()
				}
			})
		}
	}
}
