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
// (left, top, cw, ch) of src into dst (len 3*ow*oh) using the horizontal
// taps xw (ow outputs) and vertical taps yw (oh outputs) relative to the
// rectangle. tmp is scratch and is returned, possibly grown.
//
// The filter is separable, so the pass order only changes float32
// rounding. PyTorch filters horizontally first; that is cheaper when the
// crop has few rows (upsampling). When shrinking tall crops, filtering rows
// first (a contiguous multiply-add over whole rows) does less of the
// gather-style horizontal work, so the cheaper order is picked.
func resample(dst []float32, ow, oh int, src *Image, left, top, cw, ch int, xw, yw *axisWeights, tmp []float32) []float32 {
	if verticalFirst(ow, oh, cw, ch, xw, yw) {
		return resampleVFirst(dst, ow, oh, src, left, top, cw, xw, yw, tmp)
	}
	return resampleHFirst(dst, ow, oh, src, left, top, ch, xw, yw, tmp)
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

func resampleHFirst(dst []float32, ow, oh int, src *Image, left, top, ch int, xw, yw *axisWeights, tmp []float32) []float32 {
	// Rows of the rectangle the vertical pass actually reads.
	r0, r1 := int(yw.start[0]), int(yw.start[0]+yw.n[0])
	for o := 1; o < oh; o++ {
		r0 = min(r0, int(yw.start[o]))
		r1 = max(r1, int(yw.start[o]+yw.n[o]))
	}
	r1 = min(r1, ch)
	rows := r1 - r0
	tmp = grow(tmp, rows*ow)
	sw, sh := src.W, src.H
	xs, xn, xwt, xst := xw.start[:ow], xw.n[:ow], xw.w, xw.stride
	for c := 0; c < 3; c++ {
		plane := src.Pix[c*sw*sh : (c+1)*sw*sh]
		for r := 0; r < rows; r++ {
			srow := plane[(top+r0+r)*sw+left : (top+r0+r+1)*sw]
			trow := tmp[r*ow : (r+1)*ow]
			for o := range trow {
				s := srow[xs[o]:]
				n := int(xn[o])
				w := xwt[o*xst : o*xst+n]
				s = s[:n]
				var acc float32
				for k, wk := range w {
					acc += wk * s[k]
				}
				trow[o] = acc
			}
		}
		out := dst[c*ow*oh : (c+1)*ow*oh]
		for o := 0; o < oh; o++ {
			orow := out[o*ow : (o+1)*ow]
			n := int(yw.n[o])
			base := int(yw.start[o]) - r0
			w := yw.w[o*yw.stride : o*yw.stride+n]
			if n == 0 {
				clear(orow)
				continue
			}
			trow := tmp[base*ow : (base+1)*ow]
			w0 := w[0]
			for x := range orow {
				orow[x] = w0 * trow[x]
			}
			for k := 1; k < n; k++ {
				wk := w[k]
				trow := tmp[(base+k)*ow : (base+k+1)*ow]
				trow = trow[:len(orow)]
				for x := range orow {
					orow[x] += wk * trow[x]
				}
			}
		}
	}
	return tmp
}

func resampleVFirst(dst []float32, ow, oh int, src *Image, left, top, cw int, xw, yw *axisWeights, tmp []float32) []float32 {
	tmp = grow(tmp, cw)
	row := tmp[:cw]
	sw, sh := src.W, src.H
	xs, xn, xwt, xst := xw.start[:ow], xw.n[:ow], xw.w, xw.stride
	for c := 0; c < 3; c++ {
		plane := src.Pix[c*sw*sh : (c+1)*sw*sh]
		out := dst[c*ow*oh : (c+1)*ow*oh]
		for o := 0; o < oh; o++ {
			n := int(yw.n[o])
			orow := out[o*ow : (o+1)*ow]
			if n == 0 {
				clear(orow)
				continue
			}
			w := yw.w[o*yw.stride : o*yw.stride+n]
			y0 := top + int(yw.start[o])
			s0 := plane[y0*sw+left : y0*sw+left+cw]
			w0 := w[0]
			for x := range row {
				row[x] = w0 * s0[x]
			}
			for k := 1; k < n; k++ {
				wk := w[k]
				sk := plane[(y0+k)*sw+left : (y0+k)*sw+left+cw]
				sk = sk[:len(row)]
				for x := range row {
					row[x] += wk * sk[x]
				}
			}
			for ox := range orow {
				nn := int(xn[ox])
				ww := xwt[ox*xst : ox*xst+nn]
				ss := row[xs[ox]:]
				ss = ss[:nn]
				var acc float32
				for k, wk := range ww {
					acc += wk * ss[k]
				}
				orow[ox] = acc
			}
		}
	}
	return tmp
}
