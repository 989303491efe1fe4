package optim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/nn"
)

// setGrads makes params[i]'s gradient equal grads[i] by running Backward
// through a Custom op whose backward returns exactly grads.
func setGrads(params []nn.Param, grads [][]float32) {
	ins := make([]*engine.Tensor, len(params))
	for i, p := range params {
		p.T.SetRequiresGrad(true)
		p.T.ZeroGrad()
		ins[i] = p.T
	}
	tp := engine.NewTape(engine.Reference())
	out := tp.Alloc(1)
	tp.Custom(out, ins, func(*engine.Tensor) []*engine.Tensor {
		gs := make([]*engine.Tensor, len(params))
		for i, p := range params {
			gs[i] = engine.FromData(slices.Clone(grads[i]), p.T.Shape()...)
		}
		return gs
	})
	tp.Backward(out)
	tp.Reset()
}

// testParams is a small model: two weights (one all zero, to hit the
// trust ratio's ‖w‖ = 0 guard), a bias, and batch-norm scale and shift.
func testParams(rng *rand.Rand) []nn.Param {
	mk := func(name string, kind nn.ParamKind, scale float64, shape ...int) nn.Param {
		t := engine.New(shape...)
		for i := range t.Data() {
			t.Data()[i] = float32(scale * rng.NormFloat64())
		}
		t.SetRequiresGrad(true)
		return nn.Param{Name: name, T: t, Kind: kind}
	}
	return []nn.Param{
		mk("conv1.weight", nn.Weight, 0.3, 4, 3, 3, 3),
		mk("fc.weight", nn.Weight, 0, 5, 7),
		mk("fc.bias", nn.Bias, 0.5, 5),
		mk("bn1.weight", nn.BNScale, 1, 4),
		mk("bn1.bias", nn.BNShift, 0.2, 4),
	}
}

func randGrads(rng *rand.Rand, params []nn.Param, scale float64) [][]float32 {
	g := make([][]float32, len(params))
	for i, p := range params {
		g[i] = make([]float32, p.T.Len())
		for j := range g[i] {
			g[i][j] = float32(scale * rng.NormFloat64())
		}
	}
	return g
}

func snapshot(params []nn.Param) [][]float64 {
	out := make([][]float64, len(params))
	for i, p := range params {
		out[i] = f64(p.T.Data())
	}
	return out
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func norm(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s)
}

// checkClose compares float32 results with a float64 oracle, relative to
// each entry with a floor of rel·max|want| for entries near zero.
func checkClose(t *testing.T, what string, got []float32, want []float64, rel float64) {
	t.Helper()
	var scale float64
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	for j := range want {
		if d := math.Abs(float64(got[j]) - want[j]); d > rel*math.Max(math.Abs(want[j]), scale) || math.IsNaN(d) {
			t.Errorf("%s[%d] = %.9g, want %.9g", what, j, got[j], want[j])
			return
		}
	}
}
