package augment

import "math"

// Resampling follows PyTorch's antialiased bilinear interpolation
// (F.interpolate(mode="bilinear", align_corners=False, antialias=True), the
// algorithm ported from Pillow): a triangle filter whose support is widened
// by the scale factor when downsampling, so shrinking averages every source
// pixel instead of aliasing. When upsampling it equals plain bilinear
// interpolation. This is what torchvision 0.14 does for PIL images (the
// usual SimCLR input) and for tensors with antialias=True, and it is the
// tensor default from torchvision 0.17 on.

// axisWeights holds the precomputed filter taps of one axis: output index i
// reads n[i] source samples starting at start[i] with weights
// w[i*stride : i*stride+n[i]].
type axisWeights struct {
	start  []int32
	n      []int32
	w      []float32
	stride int
	buf    []float64
}

// compute fills the taps for resampling in source samples to full output
// samples, keeping only the outputs off .. off+count-1 (a centre crop of the
// resized axis) and reversing them when flip is set (a horizontal flip of
// the result). Source indices are relative to the first input sample.
func (a *axisWeights) compute(in, full, off, count int, flip bool) {
	scale := float64(in) / float64(full)
	support := 1.0
	invscale := 1.0
	if scale >= 1 {
		support = scale
		invscale = 1 / scale
	}
	stride := int(math.Ceil(support))*2 + 1
	a.stride = stride
	a.start = grow(a.start, count)
	a.n = grow(a.n, count)
	a.w = grow(a.w, count*stride)
	if cap(a.buf) < stride {
		a.buf = make([]float64, stride)
	}
	buf := a.buf[:stride]
	for o := 0; o < count; o++ {
		i := off + o
		center := scale * (float64(i) + 0.5)
		// C++ truncation toward zero, as in PyTorch's _compute_weights_aa.
		xmin := max(int(center-support+0.5), 0)
		xsize := min(int(center+support+0.5), in) - xmin
		if xsize > stride {
			xsize = stride
		}
		total := 0.0
		for j := 0; j < xsize; j++ {
			x := (float64(j+xmin) - center + 0.5) * invscale
			w := 0.0
			if x < 0 {
				x = -x
			}
			if x < 1 {
				w = 1 - x
			}
			buf[j] = w
			total += w
		}
		// Trim zero taps at both ends (identity axes become 1-tap copies).
		lo, hi := 0, xsize
		for lo < hi && buf[lo] == 0 {
			lo++
		}
		for hi > lo && buf[hi-1] == 0 {
			hi--
		}
		dstIdx := o
		if flip {
			dstIdx = count - 1 - o
		}
		a.start[dstIdx] = int32(xmin + lo)
		a.n[dstIdx] = int32(hi - lo)
		ws := a.w[dstIdx*stride : dstIdx*stride+stride]
		for j := lo; j < hi; j++ {
			v := buf[j]
			if total != 0 {
				v /= total
			}
			ws[j-lo] = float32(v)
		}
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// resample writes the 3-channel ow x oh image resampled from the rectangle
// (left, top, cw, ch) of src into dst (planar, len 3*ow*oh) using the
// horizontal taps xw (ow outputs) and vertical taps yw (oh outputs)
// relative to the rectangle. tmp is scratch and is returned, possibly grown.
// Both passes work on the three channels at once; each output is
// accumulated tap by tap in the same order whatever the source layout, so
// an Image8 gives the same floats as its conversion to Image.
//
// The filter is separable, so the pass order only changes float32
// rounding. PyTorch filters horizontally first; that is cheaper when the
// crop has few rows (upsampling). When shrinking tall crops, filtering rows
// first (a contiguous multiply-add over whole rows) does less of the
// gather-style horizontal work, so the cheaper order is picked.
func resample[T sample](dst []float32, ow, oh int, src pixels[T], left, top, cw, ch int, xw, yw *axisWeights, tmp []float32) []float32 {
	if verticalFirst(ow, oh, cw, ch, xw, yw) {
		return resampleVFirst(dst, ow, oh, src, left, top, cw, ch, xw, yw, tmp)
	}
	return resampleHFirst(dst, ow, oh, src, left, top, cw, ch, xw, yw, tmp)
}

// resampleVFirst makes each output row from the weighted sum of its source
// rows (planar, cw wide, in tmp) by the horizontal taps.
func resampleVFirst[T sample](dst []float32, ow, oh int, src pixels[T], left, top, cw, _ int, xw, yw *axisWeights, tmp []float32) []float32 {
	out := pixels[float32]{dst, ow, oh}
	tmp = grow(tmp, 3*cw)
	m0, m1, m2 := pixels[float32]{tmp, cw, 1}.row(0, 0, cw)
	for o := range oh {
		d0, d1, d2, y, w := outputRow(out, yw, o)
		if len(w) == 0 {
			continue
		}
		for k, wk := range w {
			s0, s1, s2 := src.row(top+y+k, left, cw)
			axpy(m0, m1, m2, s0, s1, s2, wk, k == 0)
		}
		taps(d0, d1, d2, m0, m1, m2, xw)
	}
	return tmp
}

// resampleHFirst applies the horizontal taps to the rows of the rectangle
// that the vertical taps read, into tmp (planar, ow wide), then the
// vertical taps.
func resampleHFirst[T sample](dst []float32, ow, oh int, src pixels[T], left, top, cw, ch int, xw, yw *axisWeights, tmp []float32) []float32 {
	r0, r1 := int(yw.start[0]), int(yw.start[0]+yw.n[0])
	for o := 1; o < oh; o++ {
		r0 = min(r0, int(yw.start[o]))
		r1 = max(r1, int(yw.start[o]+yw.n[o]))
	}
	r1 = min(r1, ch)
	rows := r1 - r0
	tmp = grow(tmp, 3*rows*ow)
	t := pixels[float32]{tmp, ow, rows}
	for r := range rows {
		d0, d1, d2 := t.row(r, 0, ow)
		s0, s1, s2 := src.row(top+r0+r, left, cw)
		taps(d0, d1, d2, s0, s1, s2, xw)
	}
	out := pixels[float32]{dst, ow, oh}
	for o := range oh {
		d0, d1, d2, y, w := outputRow(out, yw, o)
		for k, wk := range w {
			s0, s1, s2 := t.row(y-r0+k, 0, ow)
			axpy(d0, d1, d2, s0, s1, s2, wk, k == 0)
		}
	}
	return tmp
}

// outputRow returns the runs of row o of out, and the first source row y
// and weights w of its vertical taps. A row with no taps (w empty) is
// black.
func outputRow(out pixels[float32], yw *axisWeights, o int) (d0, d1, d2 []float32, y int, w []float32) {
	d0, d1, d2 = out.row(o, 0, out.w)
	y, w = int(yw.start[o]), yw.w[o*yw.stride:o*yw.stride+int(yw.n[o])]
	if len(w) == 0 {
		clear(d0)
		clear(d1)
		clear(d2)
	}
	return d0, d1, d2, y, w
}

// axpy sets the planar run d to wk times the run s (first) or adds that
// to it, pixel by pixel.
func axpy[T sample](d0, d1, d2 []float32, s0, s1, s2 []T, wk float32, first bool) {
	d1, d2 = d1[:len(d0)], d2[:len(d0)]
	s0, s1, s2 = span(s0, s1, s2, 0, len(d0))
	if first {
		for x := range d0 {
			v0, v1, v2 := at(s0, s1, s2, x)
			d0[x], d1[x], d2[x] = wk*v0, wk*v1, wk*v2
		}
		return
	}
	for x := range d0 {
		v0, v1, v2 := at(s0, s1, s2, x)
		d0[x] += wk * v0
		d1[x] += wk * v1
		d2[x] += wk * v2
	}
}

// taps writes into the planar run d (len(d0) outputs) the horizontal taps
// xw applied to the source run s.
func taps[T sample](d0, d1, d2 []float32, s0, s1, s2 []T, xw *axisWeights) {
	d1, d2 = d1[:len(d0)], d2[:len(d0)]
	xs, xn, xwt, xst := xw.start[:len(d0)], xw.n[:len(d0)], xw.w, xw.stride
	for o := range d0 {
		n := int(xn[o])
		w := xwt[o*xst : o*xst+n]
		p0, p1, p2 := span(s0, s1, s2, int(xs[o]), n)
		var a0, a1, a2 float32
		for k, wk := range w {
			v0, v1, v2 := at(p0, p1, p2, k)
			a0 += wk * v0
			a1 += wk * v1
			a2 += wk * v2
		}
		d0[o], d1[o], d2[o] = a0, a1, a2
	}
}

// verticalFirst reports whether filtering rows first is the cheaper pass
// order for a cw x ch rectangle resampled to ow x oh. Cost in
// multiply-adds, gathers weighted 2x: horizontal-first does ch rows of
// gathers then an axpy pass; vertical-first does axpys over cw-wide rows
// then oh rows of gathers.
func verticalFirst(ow, oh, cw, ch int, xw, yw *axisWeights) bool {
	var tx, ty int
	for _, n := range xw.n[:ow] {
		tx += int(n)
	}
	for _, n := range yw.n[:oh] {
		ty += int(n)
	}
	return ty*cw+2*oh*tx < 2*ch*tx+ty*ow
}
