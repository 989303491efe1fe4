package engine_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

var ref = engine.Reference()

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 99)) }

// awayFromZero pushes values at least gap away from 0 so that ReLU-like
// kinks are not crossed by the finite-difference step.
func awayFromZero(t *engine.Tensor, gap float32) *engine.Tensor {
	d := t.Data()
	for i, v := range d {
		if v >= 0 {
			d[i] = v + gap
		} else {
			d[i] = v - gap
		}
	}
	return t
}

func check(t *testing.T, inputs []*engine.Tensor, f func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor) {
	t.Helper()
	enginetest.CheckGrad(t, ref, inputs, f, enginetest.DefaultTol)
}

func TestGradConv2D(t *testing.T) {
	cases := []struct {
		n, c, h, w, o, k, s, p int
		bias                   bool
	}{
		{1, 1, 5, 5, 1, 1, 1, 0, false},
		{2, 3, 7, 6, 4, 3, 1, 1, true},
		{1, 2, 9, 9, 3, 3, 2, 1, true},
		{2, 3, 11, 10, 2, 7, 2, 3, false},
		{1, 2, 5, 7, 2, 3, 2, 0, true},
		{3, 1, 4, 4, 2, 1, 2, 0, true},
		{1, 2, 6, 5, 2, 3, 1, 2, false},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d_k%d_s%d_p%d", i, c.k, c.s, c.p), func(t *testing.T) {
			rng := newRNG(uint64(i))
			x := enginetest.Rand(rng, c.n, c.c, c.h, c.w)
			w := enginetest.Rand(rng, c.o, c.c, c.k, c.k)
			var b *engine.Tensor
			if c.bias {
				b = enginetest.Rand(rng, c.o)
			}
			p := engine.ConvParams{StrideH: c.s, StrideW: c.s, PadH: c.p, PadW: c.p}
			in := []*engine.Tensor{x, w}
			if b != nil {
				in = append(in, b)
			}
			check(t, in, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
				var bb *engine.Tensor
				if len(in) == 3 {
					bb = in[2]
				}
				return tp.Conv2D(in[0], in[1], bb, p)
			})
		})
	}
}

// The network input does not require grad: the weights still get theirs.
func TestGradConv2DFrozenInput(t *testing.T) {
	rng := newRNG(7)
	x := enginetest.Rand(rng, 2, 2, 5, 5)
	x.SetRequiresGrad(false)
	w := enginetest.Rand(rng, 3, 2, 3, 3)
	check(t, []*engine.Tensor{x, w}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
		return tp.Conv2D(in[0], in[1], nil, engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1})
	})
	if x.Grad() != nil {
		t.Errorf("input without RequiresGrad got a gradient")
	}
}

func TestGradBatchNorm(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape []int
		train bool
		relu  bool
	}{
		{"train4d", []int{2, 3, 3, 4}, true, false},
		{"train4d_relu", []int{3, 2, 3, 3}, true, true},
		{"train2d", []int{5, 4}, true, false},
		{"train_batch1", []int{1, 3, 2, 3}, true, false},
		{"infer4d_relu", []int{2, 3, 2, 2}, false, true},
		{"infer2d", []int{3, 5}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := newRNG(3)
			x := enginetest.Rand(rng, tc.shape...)
			C := tc.shape[1]
			gamma := enginetest.Rand(rng, C)
			beta := enginetest.Rand(rng, C)
			if tc.relu { // keep beta away from the kink
				awayFromZero(beta, 0.5)
			}
			st := engine.NewBNStats(C)
			for i := range C {
				st.Mean.Data()[i] = float32(rng.Float64() - 0.5)
				st.Var.Data()[i] = float32(0.5 + rng.Float64())
			}
			check(t, []*engine.Tensor{x, gamma, beta}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
				return tp.BatchNorm(in[0], in[1], in[2], st, tc.train, tc.relu)
			})
		})
	}
}

func TestGradElementwise(t *testing.T) {
	rng := newRNG(11)
	a := awayFromZero(enginetest.Rand(rng, 2, 3, 3, 2), 0.05)
	b := enginetest.Rand(rng, 2, 3, 3, 2)
	for _, tc := range []struct {
		name string
		f    func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor
	}{
		{"ReLU", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return tp.ReLU(in[0]) }},
		{"Add", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return tp.Add(in[0], in[1]) }},
		{"AddReLU", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.AddReLU(tp.Scale(in[0], 3), in[1]) // 3a+b stays away from 0 where |a|>=0.05... mostly
		}},
		{"Mul", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return tp.Mul(in[0], in[1]) }},
		{"MulSelf", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return tp.Mul(in[0], in[0]) }},
		{"AddSelf", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return tp.Add(in[1], in[1]) }},
		{"Scale", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return tp.Scale(in[1], -2.5) }},
		{"Mean", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return tp.Mean(tp.Mul(in[0], in[1])) }},
		{"Sum", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return tp.Sum(tp.Mul(in[0], in[0])) }},
		{"GAP", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor { return tp.GlobalAvgPool(in[1]) }},
		{"Reshape", func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.Mul(tp.Reshape(in[0], 6, -1), tp.Reshape(in[1], 6, 6))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, []*engine.Tensor{a, b}, tc.f)
		})
	}
}

func TestGradMaxPool(t *testing.T) {
	for i, tc := range []struct {
		shape []int
		p     engine.PoolParams
	}{
		{[]int{2, 2, 7, 7}, engine.PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
		{[]int{1, 3, 6, 5}, engine.PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
		{[]int{1, 1, 4, 4}, engine.PoolParams{KH: 2, KW: 2, StrideH: 2, StrideW: 2}},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			// Distinct values spaced 0.1 apart: no two window elements
			// are within a step of each other.
			rng := newRNG(uint64(i))
			x := engine.New(tc.shape...)
			d := x.Data()
			perm := rng.Perm(len(d))
			for j := range d {
				d[j] = float32(perm[j])*0.1 - 2
			}
			x.SetRequiresGrad(true)
			check(t, []*engine.Tensor{x}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
				return tp.MaxPool2D(in[0], tc.p)
			})
		})
	}
}

func TestGradLinearMatMul(t *testing.T) {
	rng := newRNG(5)
	x := enginetest.Rand(rng, 3, 5)
	w := enginetest.Rand(rng, 4, 5)
	b := enginetest.Rand(rng, 4)
	t.Run("Linear", func(t *testing.T) {
		check(t, []*engine.Tensor{x, w, b}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.Linear(in[0], in[1], in[2])
		})
	})
	t.Run("LinearNoBiasBatch1", func(t *testing.T) {
		x1 := enginetest.Rand(rng, 1, 5)
		check(t, []*engine.Tensor{x1, w}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.Linear(in[0], in[1], nil)
		})
	})
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			t.Run(fmt.Sprintf("MatMul_tA%v_tB%v", ta, tb), func(t *testing.T) {
				M, K, N := 3, 4, 5
				as, bs := []int{M, K}, []int{K, N}
				if ta {
					as = []int{K, M}
				}
				if tb {
					bs = []int{N, K}
				}
				a, b := enginetest.Rand(rng, as...), enginetest.Rand(rng, bs...)
				check(t, []*engine.Tensor{a, b}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
					return tp.MatMul(in[0], in[1], ta, tb)
				})
			})
		}
	}
	t.Run("MatMulSelf", func(t *testing.T) { // z z^T, as in a similarity matrix
		z := enginetest.Rand(rng, 4, 3)
		check(t, []*engine.Tensor{z}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.MatMul(in[0], in[0], false, true)
		})
	})
}

func TestGradRows(t *testing.T) {
	rng := newRNG(8)
	x := enginetest.Rand(rng, 4, 6)
	t.Run("L2Normalize", func(t *testing.T) {
		check(t, []*engine.Tensor{x}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.L2Normalize(in[0], 1e-12)
		})
	})
	t.Run("L2NormalizeClamped", func(t *testing.T) { // norm below eps: y = x/eps
		small := engine.New(2, 3)
		for i := range small.Data() {
			small.Data()[i] = float32(i+1) * 0.01
		}
		small.SetRequiresGrad(true)
		old := enginetest.Step
		enginetest.Step = 1e-3 // stay below eps
		defer func() { enginetest.Step = old }()
		check(t, []*engine.Tensor{small}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.L2Normalize(in[0], 1)
		})
	})
	t.Run("LogSoftmax", func(t *testing.T) {
		big := engine.New(2, 3) // large logits: stability
		copy(big.Data(), []float32{100, 101, 99, -50, -52, -51})
		big.SetRequiresGrad(true)
		check(t, []*engine.Tensor{x}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.LogSoftmax(in[0])
		})
		check(t, []*engine.Tensor{big}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.LogSoftmax(in[0])
		})
	})
	t.Run("CrossEntropy", func(t *testing.T) {
		labels := []int{0, 5, 2, 2}
		check(t, []*engine.Tensor{x}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.CrossEntropy(tp.Scale(in[0], 2), labels)
		})
	})
}

func TestGradConcatSplit(t *testing.T) {
	rng := newRNG(9)
	a := enginetest.Rand(rng, 2, 3, 2)
	b := enginetest.Rand(rng, 1, 3, 2)
	c := enginetest.Rand(rng, 3, 3, 2)
	t.Run("Concat", func(t *testing.T) {
		check(t, []*engine.Tensor{a, b, c}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.Concat(in[0], in[1], in[2], in[0])
		})
	})
	t.Run("Split", func(t *testing.T) {
		check(t, []*engine.Tensor{c}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			p := tp.Split(in[0], 1, 2)
			// Uses both parts, the second twice, and mixes them back.
			q := tp.Split(p[1], 1, 1)
			return tp.Concat(tp.Mul(q[0], q[1]), p[0], q[0])
		})
	})
	t.Run("SplitUnused", func(t *testing.T) { // only one part reaches the loss
		check(t, []*engine.Tensor{c}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			return tp.Split(in[0], 2, 1)[0]
		})
	})
}

// Custom op: y = x^3 with a hand-written gradient.
func cube(tp *engine.Tape, x *engine.Tensor, gradScale float32) *engine.Tensor {
	y := tp.Alloc(x.Shape()...)
	for i, v := range x.Data() {
		y.Data()[i] = v * v * v
	}
	tp.Custom(y, []*engine.Tensor{x}, func(g *engine.Tensor) []*engine.Tensor {
		d := tp.Alloc(x.Shape()...)
		for i, v := range x.Data() {
			d.Data()[i] = 3 * v * v * g.Data()[i] * gradScale
		}
		return []*engine.Tensor{d}
	})
	return y
}

func TestGradCustom(t *testing.T) {
	rng := newRNG(12)
	x := enginetest.Rand(rng, 3, 4)
	check(t, []*engine.Tensor{x}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
		return tp.Add(cube(tp, in[0], 1), in[0])
	})
}

// A small network of many ops at once, with a tensor used twice.
func TestGradComposite(t *testing.T) {
	rng := newRNG(13)
	x := enginetest.Rand(rng, 2, 2, 6, 6)
	x.SetRequiresGrad(false)
	w1 := enginetest.Rand(rng, 3, 2, 3, 3)
	g1, b1 := enginetest.Rand(rng, 3), awayFromZero(enginetest.Rand(rng, 3), 0.3)
	w2 := enginetest.Rand(rng, 3, 3, 1, 1)
	fc := enginetest.Rand(rng, 4, 3)
	p := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	check(t, []*engine.Tensor{x, w1, g1, b1, w2, fc}, func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
		h := tp.BatchNorm(tp.Conv2D(in[0], in[1], nil, p), in[2], in[3], nil, true, false)
		r := tp.Add(tp.Conv2D(h, in[4], nil, engine.ConvParams{StrideH: 1, StrideW: 1}), h)
		z := tp.L2Normalize(tp.Linear(tp.GlobalAvgPool(r), in[5], nil), 1e-12)
		return tp.LogSoftmax(tp.MatMul(z, z, false, true))
	})
}
