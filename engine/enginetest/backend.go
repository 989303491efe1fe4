package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// This file is the conformance suite that every engine.Backend passes:
// each kernel against an oracle written here, independent of every
// backend's code (the Reference's included): float64 loops straight from
// the kernel's definition, and for batch norm's backward central
// differences of the float64 forward. Blocked layouts are exercised
// wherever the backend produces them.

// Tolerances bound a kernel's error against its oracle, as
// max|got-want| / max(1, max|want|): absolute for values of order 1,
// relative for large ones. ReLU, Add and max pooling must be exact.
type Tolerances struct {
	Conv  float64 // convolutions (looser for Winograd algorithms)
	Other float64 // batch norm, pooling backward, average pooling, MatMul
}

// DefaultTolerances suit float32 kernels with direct algorithms.
var DefaultTolerances = Tolerances{Conv: 1e-4, Other: 1e-4}

// CheckBackend runs the whole conformance suite on b with
// DefaultTolerances, each part as a subtest.
func CheckBackend(t *testing.T, b engine.Backend) { CheckBackendTol(t, b, DefaultTolerances) }

// CheckBackendTol is CheckBackend with the given tolerances.
func CheckBackendTol(t *testing.T, b engine.Backend, tol Tolerances) {
	t.Run("Conv", func(t *testing.T) { CheckConv(t, b, tol.Conv) })
	t.Run("BatchNorm", func(t *testing.T) { CheckBatchNorm(t, b, tol.Other) })
	t.Run("Elementwise", func(t *testing.T) { CheckElementwise(t, b) })
	t.Run("Pooling", func(t *testing.T) { CheckPooling(t, b, tol.Other) })
	t.Run("MatMul", func(t *testing.T) { CheckMatMul(t, b, tol.Other) })
	t.Run("Tape", func(t *testing.T) { CheckTape(t, b) })
}

// RandN returns a Plain leaf with standard normal values from rng (not
// marked as requiring grad).
func RandN(rng *rand.Rand, shape ...int) *engine.Tensor {
	t := engine.New(shape...)
	for i := range t.Raw() {
		t.Raw()[i] = float32(rng.NormFloat64())
	}
	return t
}

// PlainCopy returns t's elements in Plain order, whatever b's layout.
func PlainCopy(b engine.Backend, t *engine.Tensor) []float32 {
	p := engine.New(t.Shape()...)
	b.ToPlain(p, t)
	return p.Data()
}

// relErr is max|got-want| / max(1, max|want|); NaN counts as infinite.
func relErr(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range got {
		d = max(d, math.Abs(float64(got[i])-want[i]))
		m = max(m, math.Abs(want[i]))
	}
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	return d / max(1, m)
}

func check(t testing.TB, b engine.Backend, what string, got *engine.Tensor, want []float64, tol float64) {
	t.Helper()
	if e := relErr(PlainCopy(b, got), want); !(e <= tol) {
		t.Errorf("%s: relative error %.3g > %.3g", what, e, tol)
	}
}

func f64(xs []float32) []float64 {
	r := make([]float64, len(xs))
	for i, v := range xs {
		r[i] = float64(v)
	}
	return r
}

// variants returns x as given and, where b has a blocked layout for x's
// channel count, a blocked copy.
func variants(t testing.TB, b engine.Backend, x *engine.Tensor) []*engine.Tensor {
	t.Helper()
	v := []*engine.Tensor{x}
	if len(x.Shape()) == 4 {
		if y := BlockedCopy(t, b, x); y.Layout() != engine.Plain {
			v = append(v, y)
		}
	}
	return v
}

// BlockedCopy returns a copy of the 4-D tensor x made by b's exact 1x1
// identity convolution, so in the layout b prefers for x's channel count
// (Plain if it has none); it fails t if the copy is not exact.
func BlockedCopy(t testing.TB, b engine.Backend, x *engine.Tensor) *engine.Tensor {
	t.Helper()
	c := x.Dim(1)
	w := engine.New(c, c, 1, 1)
	for i := range c {
		w.Raw()[i*c+i] = 1
	}
	y := engine.New(x.Shape()...)
	b.Conv2D(y, x, w, nil, engine.ConvParams{StrideH: 1, StrideW: 1})
	if e := relErr(PlainCopy(b, y), f64(x.Data())); e != 0 {
		t.Errorf("%v: identity 1x1 convolution not exact: %g", x.Shape(), e)
	}
	return y
}

type convCase struct{ n, c, h, w, o, k, s, p int }

// CheckConv checks Conv2D, Conv2DBackwardData and Conv2DBackwardWeights
// (with and without bias, in every input layout) against float64 loops.
func CheckConv(t testing.TB, b engine.Backend, tol float64) {
	rng := rand.New(rand.NewPCG(1, 1))
	cases := []convCase{
		{1, 3, 7, 9, 16, 3, 1, 1},  // network input: 3 channels, batch 1
		{2, 16, 8, 8, 16, 3, 1, 1}, // blocked in and out
		{2, 5, 9, 7, 6, 3, 2, 1},   // odd everything
		{1, 8, 11, 11, 24, 7, 2, 3},
		{3, 32, 6, 6, 64, 1, 2, 0}, // 1x1 stride-2 downsample
		{2, 16, 5, 5, 8, 1, 1, 0},
		{2, 64, 8, 8, 128, 3, 2, 1},
		{1, 16, 3, 3, 16, 3, 1, 1},
		{2, 16, 6, 4, 24, 3, 1, 1}, // oneDNN backend's own Winograd on AVX2
	}
	for _, cc := range cases {
		for _, bias := range []bool{false, true} {
			name := fmt.Sprintf("%+v/bias=%v", cc, bias)
			p := engine.ConvParams{StrideH: cc.s, StrideW: cc.s, PadH: cc.p, PadW: cc.p}
			oh := (cc.h+2*cc.p-cc.k)/cc.s + 1
			ow := (cc.w+2*cc.p-cc.k)/cc.s + 1
			x := RandN(rng, cc.n, cc.c, cc.h, cc.w)
			w := RandN(rng, cc.o, cc.c, cc.k, cc.k)
			var bb, db *engine.Tensor
			if bias {
				bb = RandN(rng, cc.o)
				db = engine.New(cc.o)
			}
			dy := RandN(rng, cc.n, cc.o, oh, ow)
			yRef, dxRef, dwRef, dbRef := convOracle(x, w, bb, dy, p)
			for _, xv := range variants(t, b, x) {
				y := engine.New(cc.n, cc.o, oh, ow)
				b.Conv2D(y, xv, w, bb, p)
				check(t, b, name+" fwd x-layout "+fmt.Sprint(xv.Layout()), y, yRef, tol)
				for _, dyv := range variants(t, b, dy) {
					lay := fmt.Sprintf(" x-layout %d dy-layout %d", xv.Layout(), dyv.Layout())
					dx := engine.New(x.Shape()...)
					b.Conv2DBackwardData(dx, dyv, w, p)
					check(t, b, name+" bwd-data"+lay, dx, dxRef, tol)
					dw := engine.New(w.Shape()...)
					b.Conv2DBackwardWeights(dw, db, xv, dyv, p)
					check(t, b, name+" bwd-weights"+lay, dw, dwRef, tol)
					if bias {
						check(t, b, name+" bwd-bias"+lay, db, dbRef, tol)
					}
				}
			}
		}
	}
}

// convOracle returns y = conv(x, w) + b and, for upstream gradient dy, the
// gradients of sum(dy*y) by x, w and b, from the definition
// y[n,o,i,j] = b[o] + sum_{c,kh,kw} w[o,c,kh,kw] x[n,c,i*s-p+kh,j*s-p+kw].
func convOracle(x, w, b, dy *engine.Tensor, p engine.ConvParams) (y, dx, dw, db []float64) {
	N, C, H, W := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	O, KH, KW := w.Dim(0), w.Dim(2), w.Dim(3)
	OH, OW := dy.Dim(2), dy.Dim(3)
	xd, wd, gd := x.Data(), w.Data(), dy.Data()
	y, dx, dw, db = make([]float64, N*O*OH*OW), make([]float64, len(xd)), make([]float64, len(wd)), make([]float64, O)
	for n := range N {
		for o := range O {
			for i := range OH {
				for j := range OW {
					k := ((n*O+o)*OH+i)*OW + j
					if b != nil {
						y[k] = float64(b.Data()[o])
					}
					g := float64(gd[k])
					db[o] += g
					for c := range C {
						for kh := range KH {
							ih := i*p.StrideH - p.PadH + kh
							if ih < 0 || ih >= H {
								continue
							}
							for kw := range KW {
								iw := j*p.StrideW - p.PadW + kw
								if iw < 0 || iw >= W {
									continue
								}
								xi, wi := ((n*C+c)*H+ih)*W+iw, ((o*C+c)*KH+kh)*KW+kw
								y[k] += float64(wd[wi]) * float64(xd[xi])
								dx[xi] += g * float64(wd[wi])
								dw[wi] += g * float64(xd[xi])
							}
						}
					}
				}
			}
		}
	}
	return y, dx, dw, db
}

// CheckBatchNorm checks BatchNorm (training and inference mode, with and
// without fused ReLU, in every input layout) against a float64 forward,
// and BatchNormBackward in training mode (with the forward's workspace
// and without one) against central differences of that forward.
func CheckBatchNorm(t testing.TB, b engine.Backend, tol float64) {
	rng := rand.New(rand.NewPCG(2, 2))
	shapes := [][]int{{4, 16, 5, 3}, {2, 5, 3, 3}, {1, 32, 4, 4}, {6, 7}, {3, 16}}
	for _, s := range shapes {
		c := s[1]
		for _, train := range []bool{true, false} {
			for _, relu := range []bool{false, true} {
				name := fmt.Sprintf("%v/train=%v/relu=%v", s, train, relu)
				p := engine.BNParams{Eps: 1e-5, Train: train, ReLU: relu}
				x := RandN(rng, s...)
				for i := range x.Raw() {
					x.Raw()[i] = x.Raw()[i]*2 + 0.5
				}
				gamma, beta := RandN(rng, c), RandN(rng, c)
				mean0, var0 := RandN(rng, c).Data(), RandN(rng, c).Data()
				for i := range var0 {
					var0[i] = var0[i]*var0[i] + 0.5
				}
				dy := RandN(rng, s...)
				in := bnInputs{x: f64(x.Data()), gamma: f64(gamma.Data()), beta: f64(beta.Data()),
					mean: f64(mean0), variance: f64(var0), n: s[0], c: c, eps: float64(p.Eps), train: train, relu: relu}
				yRef, meanRef, varRef := in.forward()
				if !train {
					meanRef, varRef = in.mean, in.variance
				}
				var dxRef, dgRef, dbRef []float64
				if train {
					dxRef, dgRef, dbRef = in.backward(f64(dy.Data()))
				}
				for _, xv := range variants(t, b, x) {
					mean := engine.FromData(append([]float32(nil), mean0...), c)
					variance := engine.FromData(append([]float32(nil), var0...), c)
					y := engine.New(s...)
					ws := b.BatchNorm(y, xv, gamma, beta, mean, variance, p)
					lay := fmt.Sprintf(" x-layout %d", xv.Layout())
					check(t, b, name+" y"+lay, y, yRef, tol)
					check(t, b, name+" mean"+lay, mean, meanRef, tol)
					check(t, b, name+" var"+lay, variance, varRef, tol)
					if !train { // the tape differentiates frozen batch norm itself
						continue
					}
					for _, dyv := range variants(t, b, dy) {
						// Both the fused path (workspace) and the
						// fallback that masks with y (no workspace).
						for _, w := range []engine.Workspace{ws, nil} {
							lay := fmt.Sprintf("%s dy-layout %d ws=%v", lay, dyv.Layout(), w != nil)
							dx, dg, db := engine.New(s...), engine.New(c), engine.New(c)
							b.BatchNormBackward(dx, dg, db, dyv, xv, y, gamma, mean, variance, w, p)
							check(t, b, name+" dx"+lay, dx, dxRef, tol)
							check(t, b, name+" dgamma"+lay, dg, dgRef, tol)
							check(t, b, name+" dbeta"+lay, db, dbRef, tol)
						}
					}
				}
			}
		}
	}
}

// bnInputs is one batch-norm call in float64.
type bnInputs struct {
	x, gamma, beta, mean, variance []float64
	n, c                           int
	eps                            float64
	train, relu                    bool
}

// forward returns y and, in training mode, the batch mean and biased
// variance it used.
func (in bnInputs) forward() (y, mean, variance []float64) {
	S := len(in.x) / (in.n * in.c)
	y, mean, variance = make([]float64, len(in.x)), make([]float64, in.c), make([]float64, in.c)
	for ch := range in.c {
		mu, v := in.mean[ch], in.variance[ch]
		if in.train {
			mu, v = 0, 0
			for i := range in.n {
				for _, xv := range in.x[(i*in.c+ch)*S : (i*in.c+ch+1)*S] {
					mu += xv
				}
			}
			mu /= float64(in.n * S)
			for i := range in.n {
				for _, xv := range in.x[(i*in.c+ch)*S : (i*in.c+ch+1)*S] {
					v += (xv - mu) * (xv - mu)
				}
			}
			v /= float64(in.n * S)
		}
		mean[ch], variance[ch] = mu, v
		for i := range in.n {
			for k := (i*in.c + ch) * S; k < (i*in.c+ch+1)*S; k++ {
				y[k] = in.gamma[ch]*(in.x[k]-mu)/math.Sqrt(v+in.eps) + in.beta[ch]
				if in.relu {
					y[k] = max(y[k], 0)
				}
			}
		}
	}
	return y, mean, variance
}

// backward returns the gradients of sum(dy*forward()) by x, gamma and beta
// by central differences (float64, so h=1e-6 leaves errors near 1e-9).
func (in bnInputs) backward(dy []float64) (dx, dgamma, dbeta []float64) {
	loss := func() float64 {
		y, _, _ := in.forward()
		var s float64
		for i, v := range y {
			s += dy[i] * v
		}
		return s
	}
	diff := func(v []float64) []float64 {
		const h = 1e-6
		d := make([]float64, len(v))
		for i, orig := range v {
			v[i] = orig + h
			lp := loss()
			v[i] = orig - h
			lm := loss()
			v[i] = orig
			d[i] = (lp - lm) / (2 * h)
		}
		return d
	}
	return diff(in.x), diff(in.gamma), diff(in.beta)
}

// CheckElementwise checks ReLU, ReLUBackward and Add (with and without
// ReLU) in every layout combination; all must be exact.
func CheckElementwise(t testing.TB, b engine.Backend) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, s := range [][]int{{2, 16, 3, 5}, {3, 5, 2, 2}, {7, 9}, {11}} {
		a, c, dy := RandN(rng, s...), RandN(rng, s...), RandN(rng, s...)
		ad, cd, gd := a.Data(), c.Data(), dy.Data()
		yRef, dxRef := make([]float64, len(ad)), make([]float64, len(ad))
		for i, v := range ad {
			if v > 0 {
				yRef[i], dxRef[i] = float64(v), float64(gd[i])
			}
		}
		for _, av := range variants(t, b, a) {
			y := engine.New(s...)
			b.ReLU(y, av)
			check(t, b, fmt.Sprintf("%v ReLU layout %d", s, av.Layout()), y, yRef, 0)
			for _, dyv := range variants(t, b, dy) {
				dx := engine.New(s...)
				b.ReLUBackward(dx, dyv, y)
				check(t, b, fmt.Sprintf("%v ReLUBackward layouts %d %d", s, y.Layout(), dyv.Layout()), dx, dxRef, 0)
			}
			for _, relu := range []bool{false, true} {
				sRef := make([]float64, len(ad))
				for i := range ad {
					sRef[i] = float64(ad[i] + cd[i]) // rounded to float32, as a float32 kernel must
					if relu {
						sRef[i] = max(sRef[i], 0)
					}
				}
				for _, cv := range variants(t, b, c) {
					sum := engine.New(s...)
					b.Add(sum, av, cv, relu)
					check(t, b, fmt.Sprintf("%v Add relu=%v layouts %d %d", s, relu, av.Layout(), cv.Layout()), sum, sRef, 0)
				}
			}
		}
	}
}

// CheckPooling checks MaxPool2D (exact), its backward (the gradient goes to
// each window's maximum) and GlobalAvgPool forward and backward.
func CheckPooling(t testing.TB, b engine.Backend, tol float64) {
	rng := rand.New(rand.NewPCG(4, 4))
	pools := []engine.PoolParams{{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, {KH: 2, KW: 2, StrideH: 2, StrideW: 2}}
	for _, s := range [][]int{{2, 16, 9, 8}, {1, 3, 7, 7}, {3, 8, 4, 6}} {
		N, C, H, W := s[0], s[1], s[2], s[3]
		x := RandN(rng, s...)
		xd := x.Data()
		for _, p := range pools {
			oh, ow := (H+2*p.PadH-p.KH)/p.StrideH+1, (W+2*p.PadW-p.KW)/p.StrideW+1
			dy := RandN(rng, N, C, oh, ow)
			yRef, dxRef := make([]float64, N*C*oh*ow), make([]float64, len(xd))
			for pl := range N * C {
				for i := range oh {
					for j := range ow {
						arg := -1
						for kh := range p.KH {
							for kw := range p.KW {
								ih, iw := i*p.StrideH-p.PadH+kh, j*p.StrideW-p.PadW+kw
								if ih >= 0 && ih < H && iw >= 0 && iw < W {
									if k := (pl*H+ih)*W + iw; arg < 0 || xd[k] > xd[arg] {
										arg = k
									}
								}
							}
						}
						o := (pl*oh+i)*ow + j
						yRef[o] = float64(xd[arg])
						dxRef[arg] += float64(dy.Data()[o])
					}
				}
			}
			for _, xv := range variants(t, b, x) {
				name := fmt.Sprintf("%v %+v layout %d", s, p, xv.Layout())
				y := engine.New(N, C, oh, ow)
				ws := b.MaxPool2D(y, xv, p)
				check(t, b, name+" maxpool", y, yRef, 0)
				for _, dyv := range variants(t, b, dy) {
					dx := engine.New(s...)
					b.MaxPool2DBackward(dx, dyv, ws, p)
					check(t, b, fmt.Sprintf("%s maxpool bwd dy-layout %d", name, dyv.Layout()), dx, dxRef, tol)
				}
			}
		}
		dg := RandN(rng, N, C)
		gRef, dxRef := make([]float64, N*C), make([]float64, len(xd))
		for pl := range N * C {
			for k := pl * H * W; k < (pl+1)*H*W; k++ {
				gRef[pl] += float64(xd[k]) / float64(H*W)
				dxRef[k] = float64(dg.Data()[pl]) / float64(H*W)
			}
		}
		for _, xv := range variants(t, b, x) {
			g := engine.New(N, C)
			b.GlobalAvgPool(g, xv)
			if g.Layout() != engine.Plain {
				t.Errorf("GlobalAvgPool output layout %d, want Plain", g.Layout())
			}
			check(t, b, fmt.Sprintf("%v gap layout %d", s, xv.Layout()), g, gRef, tol)
		}
		dx := engine.New(s...)
		b.GlobalAvgPoolBackward(dx, dg)
		check(t, b, fmt.Sprintf("%v gap bwd", s), dx, dxRef, tol)
	}
}

// CheckMatMul checks c = alpha*op(a)*op(b) + beta*c for every transpose
// combination.
func CheckMatMul(t testing.TB, b engine.Backend, tol float64) {
	rng := rand.New(rand.NewPCG(5, 5))
	const m, n, k = 7, 5, 13
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
				as, bs := []int{m, k}, []int{k, n}
				if ta {
					as = []int{k, m}
				}
				if tb {
					bs = []int{n, k}
				}
				a, bm, c0 := RandN(rng, as...), RandN(rng, bs...), RandN(rng, m, n)
				at := func(i, j int) float64 { // op(a)[i,j]
					if ta {
						return float64(a.Data()[j*m+i])
					}
					return float64(a.Data()[i*k+j])
				}
				bt := func(i, j int) float64 { // op(b)[i,j]
					if tb {
						return float64(bm.Data()[j*k+i])
					}
					return float64(bm.Data()[i*n+j])
				}
				want := make([]float64, m*n)
				for i := range m {
					for j := range n {
						var s float64
						for l := range k {
							s += at(i, l) * bt(l, j)
						}
						want[i*n+j] = float64(ab[0])*s + float64(ab[1])*float64(c0.Data()[i*n+j])
					}
				}
				got := engine.FromData(append([]float32(nil), c0.Raw()...), m, n)
				b.MatMul(got, a, bm, ta, tb, ab[0], ab[1])
				check(t, b, fmt.Sprintf("MatMul ta=%v tb=%v alpha,beta=%v", ta, tb, ab), got, want, tol)
			}
		}
	}
}

// CheckTape checks, by finite differences (CheckGrad), the gradients that
// the tape computes on b through a small residual network: convolutions
// (strided, biased), batch norm, a residual add, global average pooling and
// a linear layer, with the layouts b chooses flowing between them. ReLU and
// max pooling are left out, as their kinks would upset the differences
// (the kernel checks cover them), and so are biases followed by a batch
// norm, whose gradient is zero.
func CheckTape(t testing.TB, b engine.Backend) {
	rng := rand.New(rand.NewPCG(7, 7))
	x := Rand(rng, 4, 16, 4, 4)
	w1, w2, w3 := Rand(rng, 16, 16, 3, 3), Rand(rng, 16, 16, 3, 3), Rand(rng, 32, 16, 1, 1)
	g1, g2, b2, b3 := Rand(rng, 16), Rand(rng, 16), Rand(rng, 16), Rand(rng, 32)
	fc, fcb := Rand(rng, 10, 32), Rand(rng, 10)
	b1 := engine.New(16) // no gradient wanted
	s1 := engine.ConvParams{StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	d2 := engine.ConvParams{StrideH: 2, StrideW: 2}
	// 40 elements of each input: the differences cost two forward passes
	// each, and a wrong kernel spoils many elements.
	checkGrad(t, b, []*engine.Tensor{x, w1, w2, w3, g1, g2, b2, b3, fc, fcb},
		func(tp *engine.Tape, in []*engine.Tensor) *engine.Tensor {
			x, w1, w2, w3, g1, g2, b2, b3, fc, fcb := in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], in[9]
			h := tp.BatchNorm(tp.Conv2D(x, w1, nil, s1), g1, b1, nil, true, false)
			r := tp.BatchNorm(tp.Conv2D(h, w2, nil, s1), g2, b2, nil, true, false)
			h = tp.Conv2D(tp.Add(r, x), w3, b3, d2)
			return tp.Linear(tp.GlobalAvgPool(h), fc, fcb)
		}, DefaultTol, 40)
}
