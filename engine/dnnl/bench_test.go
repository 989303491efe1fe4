//go:build cgo && !purego

package dnnl

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/simclr-go/simclr/engine"
)

// benchShapes are the convolutions of ResNet-18 (CIFAR stem) at batch 64:
// the 3x3 stride-1 convs of each stage and the stride-2 3x3 and 1x1
// downsample convs that enter stages 2-4.
var benchShapes = []convCase{
	{64, 64, 32, 32, 64, 3, 1, 1},
	{64, 128, 16, 16, 128, 3, 1, 1},
	{64, 256, 8, 8, 256, 3, 1, 1},
	{64, 512, 4, 4, 512, 3, 1, 1},
	{64, 64, 32, 32, 128, 3, 2, 1},
	{64, 128, 16, 16, 256, 3, 2, 1},
	{64, 256, 8, 8, 512, 3, 2, 1},
	{64, 64, 32, 32, 128, 1, 2, 0},
	{64, 128, 16, 16, 256, 1, 2, 0},
	{64, 256, 8, 8, 512, 1, 2, 0},
}

func (c convCase) String() string {
	return fmt.Sprintf("%dx%dx%d-%d_k%ds%d", c.c, c.h, c.w, c.o, c.k, c.s)
}

type convBench struct {
	b       *backend
	x, w, y *engine.Tensor
	dy, dx  *engine.Tensor
	dw      *engine.Tensor
	p       engine.ConvParams
	dm      [13]int64
	flops   float64
}

func newConvBench(tb testing.TB, c convCase) *convBench {
	be := newBackend(tb).(*backend)
	rng := rand.New(rand.NewPCG(9, 9))
	p := engine.ConvParams{StrideH: c.s, StrideW: c.s, PadH: c.p, PadW: c.p}
	oh := (c.h+2*c.p-c.k)/c.s + 1
	ow := (c.w+2*c.p-c.k)/c.s + 1
	cb := &convBench{
		b: be, p: p,
		x:  blockedCopy(tb, be, randT(rng, c.n, c.c, c.h, c.w)),
		w:  randT(rng, c.o, c.c, c.k, c.k),
		y:  engine.New(c.n, c.o, oh, ow),
		dy: blockedCopy(tb, be, randT(rng, c.n, c.o, oh, ow)),
		dx: engine.New(c.n, c.c, c.h, c.w),
		dw: engine.New(c.o, c.c, c.k, c.k),
	}
	cb.dm = convDims("bench", cb.x, cb.w, cb.y, p)
	cb.flops = 2 * float64(c.n*c.o*c.c*c.k*c.k*oh*ow)
	return cb
}

// run is one engine call of the given direction (0 fwd, 1 bwd data, 2 bwd
// weights).
func (cb *convBench) run(kind int) {
	switch kind {
	case 0:
		cb.b.Conv2D(cb.y, cb.x, cb.w, nil, cb.p)
	case 1:
		cb.b.Conv2DBackwardData(cb.dx, cb.dy, cb.w, cb.p)
	case 2:
		cb.b.Conv2DBackwardWeights(cb.dw, nil, cb.x, cb.dy, cb.p)
	}
}

var kinds = []string{"fwd", "bwd_data", "bwd_weights"}

// BenchmarkConv measures the engine path: Go call, dispatch to the oneDNN
// thread, cgo, plan lookup, weight reorders, the primitive, reorders back.
func BenchmarkConv(b *testing.B) {
	for _, c := range benchShapes {
		for kind, kn := range kinds {
			b.Run(kn+"/"+c.String(), func(b *testing.B) {
				cb := newConvBench(b, c)
				cb.run(kind) // create the plan
				b.ResetTimer()
				for b.Loop() {
					cb.run(kind)
				}
				b.ReportMetric(cb.flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkConvRaw runs the same cached convolution primitive in a loop
// inside C: no Go, no dispatch, no reorders. The ratio to BenchmarkConv is
// the engine's overhead.
func BenchmarkConvRaw(b *testing.B) {
	for _, c := range benchShapes {
		for kind, kn := range kinds {
			b.Run(kn+"/"+c.String(), func(b *testing.B) {
				cb := newConvBench(b, c)
				cb.run(kind) // create the plan and bind the buffers
				p := cb.plan(kind)
				var sec float64
				cb.b.d.do(func() {
					b.ResetTimer()
					sec = p.runMain(b.N)
					b.StopTimer()
				})
				b.ReportMetric(cb.flops*float64(b.N)/sec/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkConvOverhead alternates engine calls and raw primitive runs on
// the same buffers, so both see the same machine load, and reports the
// median of the per-pair time ratios (engine/raw) next to both rates.
func BenchmarkConvOverhead(b *testing.B) {
	for _, c := range benchShapes {
		for kind, kn := range kinds {
			b.Run(kn+"/"+c.String(), func(b *testing.B) {
				cb := newConvBench(b, c)
				cb.run(kind)
				p := cb.plan(kind)
				b.Logf("%s: %d steps, main %s", c, p.steps, p.impl)
				var eng, raw []float64
				for b.Loop() {
					t := time.Now()
					cb.run(kind)
					eng = append(eng, time.Since(t).Seconds())
					var s float64
					cb.b.d.do(func() { s = p.runMain(1) })
					raw = append(raw, s)
				}
				ratios := make([]float64, len(eng))
				for i := range eng {
					ratios[i] = eng[i] / raw[i]
				}
				b.ReportMetric(cb.flops/median(eng)/1e9, "engine-GFLOP/s")
				b.ReportMetric(cb.flops/median(raw)/1e9, "raw-GFLOP/s")
				b.ReportMetric(median(ratios), "engine/raw")
			})
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// plan returns the cached plan that run(kind) uses.
func (cb *convBench) plan(kind int) *plan {
	var xl, yl int
	switch kind {
	case 0:
		xl, yl = layCode(cb.x.Layout()), layCode(cb.y.Layout())
	case 1:
		xl, yl = layCode(cb.dx.Layout()), layCode(cb.dy.Layout())
	case 2:
		xl, yl = layCode(cb.x.Layout()), layCode(cb.dy.Layout())
	}
	p := cb.b.convPlan(kind, &cb.dm, xl, yl, false)
	if p == nil {
		panic("plan not cached")
	}
	return p
}

// BenchmarkDispatch is the fixed cost of one kernel call through the engine
// (hand-off to the oneDNN thread, cgo, plan lookup) on a tiny ReLU.
func BenchmarkDispatch(b *testing.B) {
	be := newBackend(b)
	x, y := engine.New(16), engine.New(16)
	be.ReLU(y, x)
	for b.Loop() {
		be.ReLU(y, x)
	}
}
