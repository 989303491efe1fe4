//go:build cgo && !purego

package dnnl

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// TestConvAuto runs the convolutions with SIMCLR_CONV_ALGO=auto, timing
// the candidates even on these small shapes: Winograd (oneDNN's on AVX-512,
// the engine's on AVX2) where it measures faster, direct elsewhere.
func TestConvAuto(t *testing.T) {
	t.Setenv("SIMCLR_CONV_ALGO", "auto")
	old := convTuneMinFLOP
	convTuneMinFLOP = 0
	defer func() { convTuneMinFLOP = old }()
	enginetest.CheckConv(t, newBackend(t), convTol())
}

// TestOwnWinograd checks the engine's F(2x2,3x3) kernels (wino.h) against
// the plain-Go reference in all three directions, on blocked activations,
// for batch 1 and shapes that span several tile chunks.
func TestOwnWinograd(t *testing.T) {
	be := newBackend(t).(*backend)
	ref := engine.Reference()
	rng := rand.New(rand.NewPCG(3, 3))
	cases := []convCase{
		{1, 8, 2, 2, 8, 3, 1, 1},
		{2, 16, 8, 6, 24, 3, 1, 1},
		{3, 8, 4, 4, 16, 3, 1, 1},
		{64, 64, 8, 8, 8, 3, 1, 1},  // per-thread path (<= 64 channels), 4 chunks
		{4, 72, 4, 6, 80, 3, 1, 1},  // threaded-GEMM path (> 64 channels)
		{128, 72, 8, 8, 8, 3, 1, 1}, // threaded-GEMM path, 2 chunks
	}
	ran := false
	for _, c := range cases {
		p := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
		x := randT(rng, c.n, c.c, c.h, c.w)
		w := randT(rng, c.o, c.c, 3, 3)
		dy := randT(rng, c.n, c.o, c.h, c.w)
		yRef, dxRef, dwRef := engine.New(c.n, c.o, c.h, c.w), engine.New(x.Shape()...), engine.New(w.Shape()...)
		ref.Conv2D(yRef, x, w, nil, p)
		ref.Conv2DBackwardData(dxRef, dy, w, p)
		ref.Conv2DBackwardWeights(dwRef, nil, x, dy, p)
		xb, dyb := blockedCopy(t, be, x), blockedCopy(t, be, dy)
		if xb.Layout() != engine.Blocked8 || dyb.Layout() != engine.Blocked8 {
			t.Skip("the engine's Winograd runs on 8-channel blocks (AVX2 CPUs)")
		}
		y, dx, dw := engine.New(yRef.Shape()...), engine.New(x.Shape()...), engine.New(w.Shape()...)
		dm := convDims("test", x, w, y, p)
		for kind, hs := range []handles{
			{ptr(xb), ptr(w), nil, ptr(y)},
			{ptr(dyb), ptr(w), ptr(dx)},
			{ptr(xb), ptr(dyb), ptr(dw)},
		} {
			pl, err := newWinoPlan(kind, &dm, 8, 8, false)
			if err != nil {
				t.Skipf("no own Winograd here: %v", err)
			}
			be.d.do(func() { must("wino", pl.exec(&hs)); pl.free() })
		}
		ran = true
		name := fmt.Sprintf("%+v", c)
		y.SetLayout(engine.Blocked8)
		dx.SetLayout(engine.Blocked8)
		check(t, be, name+" fwd", y, yRef, tolDirect)
		check(t, be, name+" bwd-data", dx, dxRef, tolDirect)
		check(t, be, name+" bwd-weights", dw, dwRef, tolDirect)
	}
	if !ran {
		t.Fatal("no case ran")
	}
}

// TestOwnWinogradRefused checks that shapes the kernel does not handle are
// refused (and so fall back to oneDNN's direct kernel).
func TestOwnWinogradRefused(t *testing.T) {
	for _, c := range []struct {
		d      [13]int64
		xl, yl int
		bias   bool
	}{
		{[13]int64{1, 8, 5, 4, 8, 3, 3, 5, 4, 1, 1, 1, 1}, 8, 8, false}, // odd height
		{[13]int64{1, 8, 4, 4, 8, 3, 3, 2, 2, 2, 2, 1, 1}, 8, 8, false}, // stride 2
		{[13]int64{1, 8, 4, 4, 8, 3, 3, 4, 4, 1, 1, 1, 1}, 0, 8, false}, // plain input
		{[13]int64{1, 8, 4, 4, 8, 3, 3, 4, 4, 1, 1, 1, 1}, 8, 8, true},  // bias
		{[13]int64{1, 8, 4, 4, 8, 1, 1, 4, 4, 1, 1, 0, 0}, 8, 8, false}, // 1x1
	} {
		if p, err := newWinoPlan(0, &c.d, c.xl, c.yl, c.bias); err == nil {
			p.free()
			t.Errorf("%v layouts %d/%d bias %v: accepted", c.d, c.xl, c.yl, c.bias)
		}
	}
}
