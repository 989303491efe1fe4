package engine_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// Goldens from PyTorch (testdata/gen_torch_goldens.py, computed in float64
// from float32 inputs): forward outputs, running statistics and the
// gradients of L = sum(R*out).
type goldenTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

type goldenCase struct {
	Op     string                  `json:"op"`
	Params map[string]any          `json:"params"`
	Inputs map[string]goldenTensor `json:"inputs"`
	R      goldenTensor            `json:"R"`
	Out    goldenTensor            `json:"out"`
	Grads  map[string]goldenTensor `json:"grads"`
	Extra  map[string]goldenTensor `json:"extra"`
}

func (g goldenTensor) tensor() *engine.Tensor {
	d := make([]float32, len(g.Data))
	for i, v := range g.Data {
		d[i] = float32(v)
	}
	return engine.FromData(d, g.Shape...)
}

func num(p map[string]any, k string) int { return int(p[k].(float64)) }

// closeTo compares with a tolerance for float32 results of float64 maths:
// each value of a single op carries a few float32 roundings (relative 6e-8
// each) of intermediates that can be ~10x larger than the result, hence
// tol 1e-5 (the small ResNet chain passes it too).
func closeTo(t *testing.T, what string, got []float32, want goldenTensor, tol float64) {
	t.Helper()
	if len(got) != len(want.Data) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want.Data))
	}
	bad := 0
	for i, w := range want.Data {
		if d := math.Abs(float64(got[i]) - w); !(d <= tol*(1+math.Abs(w))) {
			if bad < 3 {
				t.Errorf("%s[%d] = %.7g, PyTorch %.7g", what, i, got[i], w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(got))
	}
}

func TestReferenceMatchesPyTorch(t *testing.T) {
	raw, err := os.ReadFile("testdata/torch_goldens.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("testdata/torch_goldens.json: %v", err)
	}
	if len(file.Cases) < 20 {
		t.Fatalf("only %d golden cases", len(file.Cases))
	}
	for i, c := range file.Cases {
		t.Run(fmt.Sprintf("%d_%s", i, c.Op), func(t *testing.T) {
			in := map[string]*engine.Tensor{}
			for k, v := range c.Inputs {
				in[k] = v.tensor()
				in[k].SetRequiresGrad(true)
			}
			tp := engine.NewTape(ref)
			var st *engine.BNStats
			var out *engine.Tensor
			const tol = 1e-5
			p := c.Params
			switch c.Op {
			case "conv":
				s, pad := num(p, "stride"), num(p, "pad")
				out = tp.Conv2D(in["x"], in["w"], in["b"], engine.ConvParams{StrideH: s, StrideW: s, PadH: pad, PadW: pad})
			case "batchnorm":
				st = &engine.BNStats{Mean: c.Extra["running_mean_before"].tensor(), Var: c.Extra["running_var_before"].tensor(), Momentum: 0.1, Eps: 1e-5}
				out = tp.BatchNorm(in["x"], in["gamma"], in["beta"], st, p["train"].(bool), p["relu"].(bool))
			case "maxpool":
				k, s, pad := num(p, "k"), num(p, "stride"), num(p, "pad")
				out = tp.MaxPool2D(in["x"], engine.PoolParams{KH: k, KW: k, StrideH: s, StrideW: s, PadH: pad, PadW: pad})
			case "gap":
				out = tp.GlobalAvgPool(in["x"])
			case "linear":
				out = tp.Linear(in["x"], in["w"], in["b"])
			case "matmul":
				out = tp.MatMul(in["a"], in["b"], p["transA"].(bool), p["transB"].(bool))
			case "logsoftmax":
				out = tp.LogSoftmax(in["x"])
			case "crossentropy":
				var labels []int
				for _, l := range p["labels"].([]any) {
					labels = append(labels, int(l.(float64)))
				}
				out = tp.CrossEntropy(in["x"], labels)
			case "l2normalize":
				out = tp.L2Normalize(in["x"], float32(p["eps"].(float64)))
			case "resnet":
				out = smallResNet(tp, in)
			default:
				t.Fatalf("unknown op %q", c.Op)
			}
			closeTo(t, "out", out.Data(), c.Out, tol)
			if st != nil {
				closeTo(t, "running mean", st.Mean.Data(), c.Extra["running_mean"], tol)
				closeTo(t, "running var", st.Var.Data(), c.Extra["running_var"], tol)
			}
			tp.Backward(tp.Sum(tp.Mul(out, c.R.tensor())))
			for k, g := range c.Grads {
				if in[k].Grad() == nil {
					t.Errorf("no gradient for %s", k)
					continue
				}
				closeTo(t, "d"+k, in[k].Grad().Data(), g, tol)
			}
		})
	}
}

// smallResNet mirrors the "resnet" case of gen_torch_goldens.py.
func smallResNet(tp *engine.Tape, P map[string]*engine.Tensor) *engine.Tensor {
	conv := func(x *engine.Tensor, w string, s, p int) *engine.Tensor {
		return tp.Conv2D(x, P[w], nil, engine.ConvParams{StrideH: s, StrideW: s, PadH: p, PadW: p})
	}
	bn := func(x *engine.Tensor, k string, relu bool) *engine.Tensor {
		return tp.BatchNorm(x, P["g"+k], P["b"+k], nil, true, relu)
	}
	h := bn(conv(P["x"], "w1", 2, 1), "1", true)
	h = tp.MaxPool2D(h, engine.PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1})
	a := bn(conv(h, "w2", 1, 1), "2", true)
	h = tp.AddReLU(bn(conv(a, "w3", 1, 1), "3", false), h)
	a = bn(conv(h, "w4", 2, 1), "4", false)
	h = tp.AddReLU(a, bn(conv(h, "wd", 2, 0), "d", false))
	return tp.LogSoftmax(tp.Linear(tp.GlobalAvgPool(h), P["fc"], P["fb"]))
}
