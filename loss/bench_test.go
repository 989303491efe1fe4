package loss

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/simclr-go/simclr/engine"
)

// torchMs is PyTorch 1.13 + OpenBLAS on 2 threads on this machine
// (../shared/reference/RESULTS.md, NT-Xent table, d=128, median ms):
// forward+backward and forward only.
var torchMs = map[int][2]float64{256: {5.3, 1.6}, 1024: {59.2, 19.5}, 4096: {1280.3, 600.5}}

// processCPU is the CPU time of the whole process (all threads: goroutines
// and oneDNN's OpenMP pool), a steadier figure than wall time on a shared
// machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchNTXent reports ms/op, cpu-ms/op and the ratio of wall time to
// PyTorch's ("x-torch": below 1 is faster).
func benchNTXent(b *testing.B, fwdOnly bool) {
	for _, be := range backends(b) {
		for _, n := range []int{256, 1024, 4096} {
			if n == 4096 && (testing.Short() || be.Name() == "reference") {
				continue // 51 GFLOP of GEMM: minutes on the plain-Go backend
			}
			b.Run(fmt.Sprintf("%s/N=%d", be.Name(), n), func(b *testing.B) {
				const d = 128
				z := engine.FromData(toF32(randZ(rand.New(rand.NewPCG(1, 2)), 2*n, d, 1)), 2*n, d)
				z.SetRequiresGrad(!fwdOnly)
				tp := engine.NewTape(be)
				tp.SetGrad(!fwdOnly)
				once := func() {
					z.ZeroGrad()
					l, _ := NTXent(tp, z, n, 0.5)
					if !fwdOnly {
						tp.Backward(l)
					}
					tp.Reset()
				}
				once() // fills the tape's pool and oneDNN's plan cache
				b.ReportAllocs()
				b.ResetTimer()
				c0 := processCPU()
				for b.Loop() {
					once()
				}
				ms := b.Elapsed().Seconds() * 1e3 / float64(b.N)
				b.ReportMetric(ms, "ms/op")
				b.ReportMetric((processCPU()-c0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
				ref := torchMs[n][0]
				if fwdOnly {
					ref = torchMs[n][1]
				}
				b.ReportMetric(ms/ref, "x-torch")
			})
		}
	}
}

// BenchmarkNTXent is one forward+backward at d=128, τ=0.5, the setting of
// ../shared/reference/RESULTS.md's NT-Xent table.
func BenchmarkNTXent(b *testing.B) { benchNTXent(b, false) }

// BenchmarkNTXentForward is the forward pass alone (torch.no_grad there).
func BenchmarkNTXentForward(b *testing.B) { benchNTXent(b, true) }
