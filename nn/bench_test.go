package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// BenchmarkTrainStep times forward + backward of encoder and v1 head on
// 32x32 inputs (no loss, no optimiser) and reports GFLOP/s with the
// reference script's convention (3 × forward FLOPs per view), comparable
// with ../shared/reference/RESULTS.md's "achieved GFLOP/s".
//
//	go test ./nn -run - -bench TrainStep -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	cases := []struct {
		arch  string
		width float64
		views int
	}{
		{"resnet18", 0.25, 128},
		{"resnet18", 1, 64},
	}
	for _, backend := range []string{"reference", "dnnl"} {
		for _, c := range cases {
			views := c.views
			if backend == "reference" {
				views = 8 // the reference backend is a test oracle: ~0.5 GFLOP/s
			}
			name := fmt.Sprintf("%s/%s_w%v_views%d", backend, c.arch, c.width, views)
			b.Run(name, func(b *testing.B) {
				be := engine.Reference()
				if backend == "dnnl" {
					be = dnnlBackend(b)
				} else if c.width > 0.25 {
					b.Skip("the reference backend is a test oracle; full width is too slow")
				}
				m, err := NewModel(ResNetConfig{Arch: c.arch, Width: c.width, Stem: "cifar"}, HeadConfig{Version: "v1"})
				if err != nil {
					b.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(1, 1))
				x := randTensor(rng, views, 3, 32, 32)
				r := randTensor(rng, views, 128)
				tp := engine.NewTape(be)
				b.ResetTimer()
				for range b.N {
					z := m.Forward(tp, x, true)
					tp.Backward(tp.Sum(tp.Mul(z, r)))
					tp.Reset()
				}
				flop := 3 * float64(m.FLOPs(32, 32)) * float64(views)
				b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(float64(views*b.N)/b.Elapsed().Seconds(), "views/s")
			})
		}
	}
}
