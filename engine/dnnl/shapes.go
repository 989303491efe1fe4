//go:build cgo && !purego

package dnnl

import (
	"fmt"
	"slices"

	"github.com/simclr-go/simclr/engine"
)

// Shape checks: each kernel validates its arguments before they reach C
// and panics with the op, the tensor and the shapes (engine's error
// convention), and returns the dimensions its plan key is made of.

func need4(op, name string, t *engine.Tensor) {
	if t == nil || len(t.Shape()) != 4 {
		panic(fmt.Sprintf("dnnl: %s: %s %v is not 4-D", op, name, shapeOf(t)))
	}
}

func shapeOf(t *engine.Tensor) []int {
	if t == nil {
		return nil
	}
	return t.Shape()
}

func needShape(op, name string, t *engine.Tensor, shape ...int) {
	if t == nil || !slices.Equal(t.Shape(), shape) {
		panic(fmt.Sprintf("dnnl: %s: %s is %v, want %v", op, name, shapeOf(t), shape))
	}
}

// convDims checks a convolution's shapes and returns N C H W O KH KW OH OW
// SH SW PH PW.
func convDims(op string, x, w, y *engine.Tensor, p engine.ConvParams) [13]int64 {
	need4(op, "x", x)
	need4(op, "w", w)
	n, c, h, wd := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	o, kh, kw := w.Dim(0), w.Dim(2), w.Dim(3)
	if w.Dim(1) != c {
		panic(fmt.Sprintf("dnnl: %s: x %v and w %v: channels differ", op, x.Shape(), w.Shape()))
	}
	if p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 {
		panic(fmt.Sprintf("dnnl: %s: bad params %+v", op, p))
	}
	oh := (h+2*p.PadH-kh)/p.StrideH + 1
	ow := (wd+2*p.PadW-kw)/p.StrideW + 1
	if oh < 1 || ow < 1 {
		panic(fmt.Sprintf("dnnl: %s: x %v too small for w %v with %+v", op, x.Shape(), w.Shape(), p))
	}
	needShape(op, "output", y, n, o, oh, ow)
	return [13]int64{int64(n), int64(c), int64(h), int64(wd), int64(o), int64(kh), int64(kw),
		int64(oh), int64(ow), int64(p.StrideH), int64(p.StrideW), int64(p.PadH), int64(p.PadW)}
}

// bnDims checks a batch norm's shapes; x is [N,C] or [N,C,H,W].
func bnDims(op string, x *engine.Tensor, vecs ...*engine.Tensor) ([4]int64, int) {
	s := x.Shape()
	if len(s) != 2 && len(s) != 4 {
		panic(fmt.Sprintf("dnnl: %s: x %v is neither [N,C] nor [N,C,H,W]", op, s))
	}
	var dims [4]int64
	for i, v := range s {
		dims[i] = int64(v)
	}
	for _, v := range vecs {
		if v == nil || v.Len() != s[1] {
			panic(fmt.Sprintf("dnnl: %s: x %v needs per-channel tensors of %d values, got %v", op, s, s[1], shapeOf(v)))
		}
	}
	return dims, len(s)
}

// eltDims picks the shape an elementwise plan runs on: 1-D when every
// tensor is Plain (any rank), else the 4-D shape.
func eltDims(op string, ts ...*engine.Tensor) ([4]int64, int) {
	var dims [4]int64
	plain := true
	for _, t := range ts {
		if t.Layout() != engine.Plain {
			plain = false
		}
	}
	s := ts[0].Shape()
	if plain {
		dims[0] = int64(ts[0].Len())
		return dims, 1
	}
	if len(s) != 4 {
		panic(fmt.Sprintf("dnnl: %s: blocked tensor %v is not 4-D", op, s))
	}
	for i, v := range s {
		dims[i] = int64(v)
	}
	return dims, 4
}

func poolDims(op string, x, y *engine.Tensor, p engine.PoolParams) [12]int64 {
	need4(op, "x", x)
	n, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	if p.KH < 1 || p.KW < 1 || p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 || p.PadH >= p.KH || p.PadW >= p.KW {
		panic(fmt.Sprintf("dnnl: %s: bad params %+v", op, p))
	}
	oh := (h+2*p.PadH-p.KH)/p.StrideH + 1
	ow := (w+2*p.PadW-p.KW)/p.StrideW + 1
	if oh < 1 || ow < 1 {
		panic(fmt.Sprintf("dnnl: %s: x %v too small for %+v", op, x.Shape(), p))
	}
	needShape(op, "output", y, n, c, oh, ow)
	return [12]int64{int64(n), int64(c), int64(h), int64(w), int64(oh), int64(ow),
		int64(p.KH), int64(p.KW), int64(p.StrideH), int64(p.StrideW), int64(p.PadH), int64(p.PadW)}
}
