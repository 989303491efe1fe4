package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// Programmer errors panic with "engine: <Op>: <shapes>: <problem>".
func TestBadInputPanics(t *testing.T) {
	tp := engine.NewTape(ref)
	conv := engine.ConvParams{StrideH: 1, StrideW: 1}
	blocked := tp.Alloc(1, 16, 2, 2)
	blocked.SetLayout(engine.Blocked16)
	for _, tc := range []struct {
		name string
		f    func()
		want string
	}{
		{"conv channels", func() { tp.Conv2D(engine.New(2, 3, 8, 8), engine.New(4, 5, 3, 3), nil, conv) },
			"engine: Conv2D: x [2 3 8 8] and w [4 5 3 3]: channels differ"},
		{"conv rank", func() { tp.Conv2D(engine.New(3, 8, 8), engine.New(4, 3, 3, 3), nil, conv) },
			"engine: Conv2D: x [3 8 8] has rank 3, want 4"},
		{"conv bias", func() { tp.Conv2D(engine.New(1, 3, 8, 8), engine.New(4, 3, 3, 3), engine.New(3), conv) },
			"engine: Conv2D: b [3] does not match w [4 3 3 3]"},
		{"conv kernel too big", func() { tp.Conv2D(engine.New(1, 3, 2, 2), engine.New(4, 3, 3, 3), nil, conv) },
			"engine: Conv2D: x [1 3 2 2] and w [4 3 3 3]: kernel larger"},
		{"conv stride 0", func() { tp.Conv2D(engine.New(1, 3, 4, 4), engine.New(4, 3, 3, 3), nil, engine.ConvParams{}) },
			"engine: Conv2D: x [1 3 4 4] and w [4 3 3 3]: invalid params"},
		{"empty batch", func() { engine.New(0, 3, 8, 8) },
			"engine: New: shape [0 3 8 8] has a non-positive dimension"},
		{"add shapes", func() { tp.Add(engine.New(2, 3), engine.New(3, 2)) },
			"engine: Add: a [2 3] and b [3 2]: shapes differ"},
		{"mul shapes", func() { tp.Mul(engine.New(2, 3), engine.New(2, 4)) },
			"engine: Mul: a [2 3] and b [2 4]: shapes differ"},
		{"matmul", func() { tp.MatMul(engine.New(2, 3), engine.New(2, 4), false, false) },
			"engine: MatMul: a [2 3] (transA false) and b [2 4] (transB false): inner dimensions differ"},
		{"linear", func() { tp.Linear(engine.New(2, 3), engine.New(4, 5), nil) },
			"engine: Linear: x [2 3] and w [4 5]: input features differ"},
		{"bn gamma", func() { tp.BatchNorm(engine.New(2, 3, 2, 2), engine.New(4), engine.New(3), nil, true, false) },
			"engine: BatchNorm: gamma [4] does not match x [2 3 2 2]"},
		{"bn batch 1", func() { tp.BatchNorm(engine.New(1, 3), engine.New(3), engine.New(3), nil, true, false) },
			"engine: BatchNorm: x [1 3]: training needs more than one value per channel"},
		{"bn rank", func() { tp.BatchNorm(engine.New(2, 3, 4), engine.New(3), engine.New(3), nil, true, false) },
			"engine: BatchNorm: x [2 3 4] has rank 3, want 2 or 4"},
		{"ce labels", func() { tp.CrossEntropy(engine.New(2, 3), nil) },
			"engine: CrossEntropy: logits [2 3] and 0 labels: batch sizes differ"},
		{"ce label range", func() { tp.CrossEntropy(engine.New(2, 3), []int{0, 3}) },
			"engine: CrossEntropy: logits [2 3]: label 3 of row 1 is out of range [0,3)"},
		{"split sizes", func() { tp.Split(engine.New(4, 2), 1, 2) },
			"engine: Split: x [4 2]: sizes [1 2] do not sum to 4"},
		{"split empty part", func() { tp.Split(engine.New(4, 2), 4, 0) },
			"engine: Split: x [4 2]: sizes [4 0] must be positive"},
		{"concat none", func() { tp.Concat() }, "engine: Concat: no inputs"},
		{"concat shapes", func() { tp.Concat(engine.New(1, 2), engine.New(1, 3)) },
			"engine: Concat: input 0 [1 2] and input 1 [1 3]: shapes differ beyond axis 0"},
		{"reshape", func() { tp.Reshape(engine.New(4, 2), 3, 3) },
			"engine: Reshape: x [4 2] to [3 3]: sizes differ"},
		{"maxpool pad", func() {
			tp.MaxPool2D(engine.New(1, 1, 4, 4), engine.PoolParams{KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadH: 2})
		},
			"engine: MaxPool2D: x [1 1 4 4]: invalid params"},
		{"l2 rank", func() { tp.L2Normalize(engine.New(2, 3, 4), 1e-12) },
			"engine: L2Normalize: x [2 3 4] has rank 3, want 2"},
		{"blocked data", func() { blocked.Data() },
			"engine: Data: tensor [1 16 2 2] is in a blocked layout; use Tape.Plain"},
		{"backward non-scalar", func() {
			x := engine.New(2)
			x.SetRequiresGrad(true)
			tp.Backward(tp.Scale(x, 2))
		}, "engine: Backward: loss [2] has 2 elements, want 1"},
		{"backward no grad", func() { tp.Backward(tp.Sum(engine.New(2))) },
			"engine: Backward: loss [1] does not depend on any tensor that requires grad"},
		{"reference blocked input", func() { ref.ReLU(engine.New(1, 16, 2, 2), blocked) },
			"engine: reference ReLU: x [1 16 2 2] is not Plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("no panic; want %q", tc.want)
				}
				if msg := fmt.Sprint(r); !strings.HasPrefix(msg, tc.want) {
					t.Fatalf("panic %q; want prefix %q", msg, tc.want)
				}
			}()
			tc.f()
		})
	}
}
