package engine

import (
	"fmt"
	"math"
	"runtime"

	"github.com/simclr-go/simclr/internal/par"
)

// Reference returns the plain-Go backend: every kernel written for clarity
// with float64 accumulation, reading and writing only Plain tensors (ToPlain
// also reads Blocked16 and Blocked8). It is the oracle the oneDNN backend is tested
// against and the fallback for builds without cgo. Big kernels are spread
// over a few goroutines.
func Reference() Backend { return refBackend{} }

type refBackend struct{}

func (refBackend) Name() string { return "reference" }
func (refBackend) Caps() Caps   { return Caps{} }

// plain returns t's data, refusing layouts the reference kernels cannot read.
func plain(op, name string, t *Tensor) []float32 {
	if t.layout != Plain {
		panic(fmt.Sprintf("engine: reference %s: %s %v is not Plain", op, name, t.shape))
	}
	return t.data
}

// parallel runs f(0..n-1), on several goroutines when the total work (a
// rough count of multiply-adds) is large enough to pay for them.
func parallel(n, work int, f func(i int)) {
	workers := runtime.GOMAXPROCS(0)
	if work < 1<<15 {
		workers = 1
	}
	par.Each(n, workers, f)
}

// validRange returns the output positions [lo, hi) whose input position
// out*stride - pad + k lies inside [0, in), so inner loops need no bounds
// tests.
func validRange(out, stride, pad, k, in int) (lo, hi int) {
	if d := pad - k; d > 0 {
		lo = (d + stride - 1) / stride
	}
	if last := in - 1 + pad - k; last >= 0 {
		hi = min(out, last/stride+1)
	}
	return lo, max(lo, hi)
}

func dims4(t *Tensor) (int, int, int, int) { return t.shape[0], t.shape[1], t.shape[2], t.shape[3] }

// Conv2D: y[n,o,oh,ow] = b[o] + sum_{c,kh,kw} w[o,c,kh,kw] * x[n,c,oh*s-p+kh,ow*s-p+kw],
// with x zero outside its bounds.
func (refBackend) Conv2D(y, x, w, b *Tensor, p ConvParams) {
	const op = "Conv2D"
	xd, wd, yd := plain(op, "x", x), plain(op, "w", w), y.data
	N, C, H, W := dims4(x)
	O, _, KH, KW := dims4(w)
	OH, OW := y.shape[2], y.shape[3]
	var bd []float32
	if b != nil {
		bd = plain(op, "b", b)
	}
	parallel(N*O, len(yd)*C*KH*KW, func(i int) {
		n, o := i/O, i%O
		acc := make([]float64, OH*OW)
		if bd != nil {
			for j := range acc {
				acc[j] = float64(bd[o])
			}
		}
		for c := range C {
			plane := xd[(n*C+c)*H*W : (n*C+c+1)*H*W]
			for kh := range KH {
				ohLo, ohHi := validRange(OH, p.StrideH, p.PadH, kh, H)
				for kw := range KW {
					owLo, owHi := validRange(OW, p.StrideW, p.PadW, kw, W)
					wv := float64(wd[((o*C+c)*KH+kh)*KW+kw])
					for oh := ohLo; oh < ohHi; oh++ {
						row := plane[(oh*p.StrideH-p.PadH+kh)*W:]
						accRow := acc[oh*OW:]
						for ow := owLo; ow < owHi; ow++ {
							accRow[ow] += wv * float64(row[ow*p.StrideW-p.PadW+kw])
						}
					}
				}
			}
		}
		out := yd[(n*O+o)*OH*OW : (n*O+o+1)*OH*OW]
		for j, v := range acc {
			out[j] = float32(v)
		}
	})
	y.layout = Plain
}

// Conv2DBackwardData scatters every dy[n,o,oh,ow]*w[o,c,kh,kw] back to the
// input position it was computed from.
func (refBackend) Conv2DBackwardData(dx, dy, w *Tensor, p ConvParams) {
	const op = "Conv2DBackwardData"
	gd, wd, dxd := plain(op, "dy", dy), plain(op, "w", w), dx.data
	N, C, H, W := dims4(dx)
	O, _, KH, KW := dims4(w)
	OH, OW := dy.shape[2], dy.shape[3]
	parallel(N*C, len(gd)*C*KH*KW, func(i int) {
		n, c := i/C, i%C
		acc := make([]float64, H*W)
		for o := range O {
			gplane := gd[(n*O+o)*OH*OW : (n*O+o+1)*OH*OW]
			for kh := range KH {
				ohLo, ohHi := validRange(OH, p.StrideH, p.PadH, kh, H)
				for kw := range KW {
					owLo, owHi := validRange(OW, p.StrideW, p.PadW, kw, W)
					wv := float64(wd[((o*C+c)*KH+kh)*KW+kw])
					for oh := ohLo; oh < ohHi; oh++ {
						accRow := acc[(oh*p.StrideH-p.PadH+kh)*W:]
						grow := gplane[oh*OW:]
						for ow := owLo; ow < owHi; ow++ {
							accRow[ow*p.StrideW-p.PadW+kw] += wv * float64(grow[ow])
						}
					}
				}
			}
		}
		out := dxd[(n*C+c)*H*W : (n*C+c+1)*H*W]
		for j, v := range acc {
			out[j] = float32(v)
		}
	})
	dx.layout = Plain
}

// Conv2DBackwardWeights: dw[o,c,kh,kw] = sum_{n,oh,ow} dy[n,o,oh,ow] * x[n,c,ih,iw]
// and db[o] = sum_{n,oh,ow} dy[n,o,oh,ow].
func (refBackend) Conv2DBackwardWeights(dw, db, x, dy *Tensor, p ConvParams) {
	const op = "Conv2DBackwardWeights"
	xd, gd, dwd := plain(op, "x", x), plain(op, "dy", dy), dw.data
	N, C, H, W := dims4(x)
	O, _, KH, KW := dims4(dw)
	OH, OW := dy.shape[2], dy.shape[3]
	parallel(O, len(gd)*C*KH*KW, func(o int) {
		for c := range C {
			for kh := range KH {
				ohLo, ohHi := validRange(OH, p.StrideH, p.PadH, kh, H)
				for kw := range KW {
					owLo, owHi := validRange(OW, p.StrideW, p.PadW, kw, W)
					var s float64
					for n := range N {
						gplane := gd[(n*O+o)*OH*OW : (n*O+o+1)*OH*OW]
						xplane := xd[(n*C+c)*H*W : (n*C+c+1)*H*W]
						for oh := ohLo; oh < ohHi; oh++ {
							xrow := xplane[(oh*p.StrideH-p.PadH+kh)*W:]
							grow := gplane[oh*OW:]
							for ow := owLo; ow < owHi; ow++ {
								s += float64(grow[ow]) * float64(xrow[ow*p.StrideW-p.PadW+kw])
							}
						}
					}
					dwd[((o*C+c)*KH+kh)*KW+kw] = float32(s)
				}
			}
		}
		if db != nil {
			var s float64
			for n := range N {
				for _, v := range gd[(n*O+o)*OH*OW : (n*O+o+1)*OH*OW] {
					s += float64(v)
				}
			}
			db.data[o] = float32(s)
		}
	})
	dw.layout = Plain
}

// bnDims returns N, C and the spatial size S of a [N,C] or [N,C,H,W] tensor;
// element (n,c,s) is at (n*C+c)*S+s.
func bnDims(x *Tensor) (int, int, int) {
	N, C := x.shape[0], x.shape[1]
	return N, C, len(x.data) / (N * C)
}

// BatchNorm: y = gamma*(x-mean)/sqrt(var+eps) + beta per channel, with the
// batch mean and biased variance in training mode.
func (refBackend) BatchNorm(y, x, gamma, beta, mean, variance *Tensor, p BNParams) Workspace {
	const op = "BatchNorm"
	xd, yd := plain(op, "x", x), y.data
	gd, bd := plain(op, "gamma", gamma), plain(op, "beta", beta)
	N, C, S := bnDims(x)
	M := float64(N * S)
	parallel(C, len(xd), func(c int) {
		var mu, v float64
		if p.Train {
			for n := range N {
				for _, xv := range xd[(n*C+c)*S : (n*C+c+1)*S] {
					mu += float64(xv)
				}
			}
			mu /= M
			for n := range N {
				for _, xv := range xd[(n*C+c)*S : (n*C+c+1)*S] {
					d := float64(xv) - mu
					v += d * d
				}
			}
			v /= M
			mean.data[c], variance.data[c] = float32(mu), float32(v)
		} else {
			mu, v = float64(mean.data[c]), float64(variance.data[c])
		}
		scale := float64(gd[c]) / math.Sqrt(v+float64(p.Eps))
		shift := float64(bd[c])
		for n := range N {
			base := (n*C + c) * S
			for i := base; i < base+S; i++ {
				r := (float64(xd[i])-mu)*scale + shift
				if p.ReLU && r < 0 {
					r = 0
				}
				yd[i] = float32(r)
			}
		}
	})
	y.layout = Plain
	return nil
}

// BatchNormBackward (training mode). With xhat = (x-mean)/sqrt(var+eps) and
// dy already masked by the ReLU:
// dbeta = sum dy, dgamma = sum dy*xhat,
// dx = gamma/sqrt(var+eps)/M * (M*dy - dbeta - xhat*dgamma).
func (refBackend) BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, variance *Tensor, _ Workspace, p BNParams) {
	const op = "BatchNormBackward"
	xd, gd, yd := plain(op, "x", x), plain(op, "dy", dy), plain(op, "y", y)
	ga := plain(op, "gamma", gamma)
	N, C, S := bnDims(x)
	M := float64(N * S)
	parallel(C, 2*len(xd), func(c int) {
		mu := float64(mean.data[c])
		inv := 1 / math.Sqrt(float64(variance.data[c])+float64(p.Eps))
		grad := func(i int) float64 {
			if p.ReLU && yd[i] <= 0 {
				return 0
			}
			return float64(gd[i])
		}
		var sg, sgx float64
		for n := range N {
			base := (n*C + c) * S
			for i := base; i < base+S; i++ {
				g := grad(i)
				sg += g
				sgx += g * (float64(xd[i]) - mu) * inv
			}
		}
		k := float64(ga[c]) * inv / M
		for n := range N {
			base := (n*C + c) * S
			for i := base; i < base+S; i++ {
				xhat := (float64(xd[i]) - mu) * inv
				dx.data[i] = float32(k * (M*grad(i) - sg - xhat*sgx))
			}
		}
		dgamma.data[c] = float32(sgx)
		dbeta.data[c] = float32(sg)
	})
	dx.layout = Plain
}

func (refBackend) ReLU(y, x *Tensor) {
	for i, v := range plain("ReLU", "x", x) {
		y.data[i] = max(v, 0)
	}
	y.layout = Plain
}

func (refBackend) ReLUBackward(dx, dy, y *Tensor) {
	yd := plain("ReLUBackward", "y", y)
	for i, g := range plain("ReLUBackward", "dy", dy) {
		if yd[i] > 0 {
			dx.data[i] = g
		} else {
			dx.data[i] = 0
		}
	}
	dx.layout = Plain
}

func (refBackend) Add(y, a, b *Tensor, relu bool) {
	bd := plain("Add", "b", b)
	for i, v := range plain("Add", "a", a) {
		s := v + bd[i]
		if relu {
			s = max(s, 0)
		}
		y.data[i] = s
	}
	y.layout = Plain
}

// refPoolWS records, for each output element, the index within its input
// plane of the maximum (the first one on ties, like PyTorch).
type refPoolWS struct{ argmax []int32 }

func (refBackend) MaxPool2D(y, x *Tensor, p PoolParams) Workspace {
	xd := plain("MaxPool2D", "x", x)
	N, C, H, W := dims4(x)
	OH, OW := y.shape[2], y.shape[3]
	ws := refPoolWS{argmax: make([]int32, len(y.data))}
	parallel(N*C, len(y.data)*p.KH*p.KW, func(i int) {
		plane := xd[i*H*W : (i+1)*H*W]
		for oh := range OH {
			for ow := range OW {
				best, arg := float32(math.Inf(-1)), int32(-1)
				for kh := range p.KH {
					ih := oh*p.StrideH - p.PadH + kh
					if ih < 0 || ih >= H {
						continue
					}
					for kw := range p.KW {
						iw := ow*p.StrideW - p.PadW + kw
						if iw < 0 || iw >= W {
							continue
						}
						if v := plane[ih*W+iw]; arg < 0 || v > best || v != v {
							best, arg = v, int32(ih*W+iw)
						}
					}
				}
				j := (i*OH+oh)*OW + ow
				y.data[j] = best
				ws.argmax[j] = arg
			}
		}
	})
	y.layout = Plain
	return ws
}

func (refBackend) MaxPool2DBackward(dx, dy *Tensor, ws Workspace, p PoolParams) {
	gd := plain("MaxPool2DBackward", "dy", dy)
	w, ok := ws.(refPoolWS)
	if !ok || len(w.argmax) != len(gd) {
		panic(fmt.Sprintf("engine: reference MaxPool2DBackward: dy %v: workspace is not from the reference MaxPool2D of this output", dy.shape))
	}
	N, C, H, W := dims4(dx)
	OHW := dy.shape[2] * dy.shape[3]
	clear(dx.data)
	for i := range N * C {
		plane := dx.data[i*H*W : (i+1)*H*W]
		for j := i * OHW; j < (i+1)*OHW; j++ {
			if a := w.argmax[j]; a >= 0 {
				plane[a] += gd[j]
			}
		}
	}
	dx.layout = Plain
}

func (refBackend) GlobalAvgPool(y, x *Tensor) {
	xd := plain("GlobalAvgPool", "x", x)
	N, C, H, W := dims4(x)
	S := H * W
	for i := range N * C {
		var s float64
		for _, v := range xd[i*S : (i+1)*S] {
			s += float64(v)
		}
		y.data[i] = float32(s / float64(S))
	}
	y.layout = Plain
}

func (refBackend) GlobalAvgPoolBackward(dx, dy *Tensor) {
	gd := plain("GlobalAvgPoolBackward", "dy", dy)
	N, C, H, W := dims4(dx)
	S := H * W
	for i := range N * C {
		v := float32(float64(gd[i]) / float64(S))
		plane := dx.data[i*S : (i+1)*S]
		for j := range plane {
			plane[j] = v
		}
	}
	dx.layout = Plain
}

// MatMul: c = alpha*op(a)*op(b) + beta*c; c is not read when beta is 0.
func (refBackend) MatMul(c, a, b *Tensor, transA, transB bool, alpha, beta float32) {
	const op = "MatMul"
	ad, bd, cd := plain(op, "a", a), plain(op, "b", b), plain(op, "c", c)
	M, N := c.shape[0], c.shape[1]
	K := a.shape[1]
	if transA {
		K = a.shape[0]
	}
	// Element accessors for op(a)[i,k] and op(b)[k,j].
	aAt := func(i, k int) float32 { return ad[i*K+k] }
	if transA {
		aAt = func(i, k int) float32 { return ad[k*M+i] }
	}
	bAt := func(k, j int) float32 { return bd[k*N+j] }
	if transB {
		bAt = func(k, j int) float32 { return bd[j*K+k] }
	}
	parallel(M, M*N*K, func(i int) {
		acc := make([]float64, N)
		for k := range K {
			av := float64(aAt(i, k))
			if av == 0 {
				continue
			}
			for j := range N {
				acc[j] += av * float64(bAt(k, j))
			}
		}
		row := cd[i*N : (i+1)*N]
		for j, v := range acc {
			r := float64(alpha) * v
			if beta != 0 {
				r += float64(beta) * float64(row[j])
			}
			row[j] = float32(r)
		}
	})
}

// ToPlain copies src into dst in Plain order. BlockedB (nChwBc, B = 16 or
// 8) stores element (n,c,h,w) at ((n*C/B + c/B)*H*W + h*W + w)*B + c%B.
func (refBackend) ToPlain(dst, src *Tensor) {
	var B int
	switch src.layout {
	case Plain:
		copy(dst.data, src.data)
		dst.layout = Plain
		return
	case Blocked16:
		B = 16
	case Blocked8:
		B = 8
	default:
		panic(fmt.Sprintf("engine: reference ToPlain: tensor %v has unknown layout %d", src.shape, src.layout))
	}
	if len(src.shape) != 4 || src.shape[1]%B != 0 {
		panic(fmt.Sprintf("engine: reference ToPlain: blocked tensor %v is not 4-D with C a multiple of %d", src.shape, B))
	}
	N, C, H, W := dims4(src)
	S := H * W
	for n := range N {
		for c := range C {
			blk := (n*C/B + c/B) * S * B
			out := dst.data[(n*C+c)*S : (n*C+c+1)*S]
			for s := range out {
				out[s] = src.data[blk+s*B+c%B]
			}
		}
	}
	dst.layout = Plain
}
