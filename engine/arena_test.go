package engine_test

import (
	"runtime"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// Backward frees big activations once nothing can read them, so the wide
// input gradient of a narrowing network fits in the room its dead narrow
// activations leave, instead of growing memory by its own size; and a
// repeated step reuses exactly the same memory.
func TestArenaBackwardReusesDeadActivations(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the arena is Linux-only")
	}
	const N, C, H = 4, 16, 64 // 262144 elements: arena-sized
	S := N * C * H * H
	x := enginetest.Rand(newRNG(5), N, C, H, H)
	x.SetRequiresGrad(true)
	tp := engine.NewTape(ref)
	pp := engine.PoolParams{KH: 2, KW: 2, StrideH: 2, StrideW: 2}
	var bwdTop int64
	for step := range 3 {
		tp.Reset()
		x.ZeroGrad()
		h := tp.MaxPool2D(tp.Scale(x, 2), pp)
		for range 6 {
			h = tp.Scale(h, 1.5)
		}
		l := tp.Sum(h)
		f := tp.PoolStats().ArenaFloats
		tp.Backward(l)
		b := tp.PoolStats().ArenaFloats
		if f == 0 {
			t.Fatal("no arena in use")
		}
		if step == 0 {
			bwdTop = b
			t.Logf("arena high-water: forward %d floats, after Backward %d (input size %d)", f, b, S)
			if b-f >= int64(S) {
				t.Errorf("Backward grew the arena by %d floats: the input gradient (%d) got new memory", b-f, S)
			}
		} else if b != bwdTop {
			t.Errorf("step %d: arena high-water %d, after step 0 %d: not steady", step, b, bwdTop)
		}
		// d/dx: 2·1.5⁶ where x is its 2x2 window's maximum, else 0.
		g := x.Grad().Data()
		xd := x.Data()
		want := float32(2 * 11.390625)
		for n := range N * C {
			for i := 0; i < H; i += 2 {
				for j := 0; j < H; j += 2 {
					base := n*H*H + i*H + j
					arg := base
					for _, o := range []int{base + 1, base + H, base + H + 1} {
						if xd[o] > xd[arg] {
							arg = o
						}
					}
					for _, o := range []int{base, base + 1, base + H, base + H + 1} {
						w := float32(0)
						if o == arg {
							w = want
						}
						if g[o] != w {
							t.Fatalf("step %d: grad[%d] = %g, want %g", step, o, g[o], w)
						}
					}
				}
			}
		}
	}
}
