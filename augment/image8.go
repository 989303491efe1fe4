package augment

import (
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
)

// Image8 is an interleaved 8-bit RGB image: channel c of row y, column x is
// Pix[3*(y*W+x)+c]. It stands for the float Image with values Pix/255;
// View8 and Eval8 read it directly, so decoders need not convert whole
// images to float32 when only a crop of them is used.
type Image8 struct {
	W, H int
	Pix  []uint8 // len 3*W*H
}

// NewImage8 returns a black 8-bit image of the given size.
func NewImage8(w, h int) *Image8 { return &Image8{W: w, H: h, Pix: make([]uint8, 3*w*h)} }

// Validate reports a nil, empty or inconsistent image.
func (im *Image8) Validate() error {
	switch {
	case im == nil:
		return errors.New("augment: nil image")
	case im.W <= 0 || im.H <= 0:
		return fmt.Errorf("augment: image has zero or negative size %dx%d", im.W, im.H)
	case im.W > maxSide || im.H > maxSide:
		return fmt.Errorf("augment: image size %dx%d exceeds the %d pixel limit per side", im.W, im.H, maxSide)
	case len(im.Pix) != 3*im.W*im.H:
		return fmt.Errorf("augment: malformed %dx%d 8-bit image: %d bytes, want 3*W*H = %d", im.W, im.H, len(im.Pix), 3*im.W*im.H)
	}
	return nil
}

// ToImage converts the image to a planar float Image in [0,1] (value/255).
func (im *Image8) ToImage() *Image {
	out := NewImage(im.W, im.H)
	n := im.W * im.H
	R, G, B := out.Pix[:n], out.Pix[n:2*n], out.Pix[2*n:]
	for i := range n {
		p := im.Pix[3*i : 3*i+3 : 3*i+3]
		R[i], G[i], B[i] = u8f[p[0]], u8f[p[1]], u8f[p[2]]
	}
	return out
}

// FromImage8 converts a decoded image to 8-bit RGB when that is exact, that
// is when FromImage would give values that are all multiples of 1/255:
// YCbCr (JPEG), Gray, NRGBA (alpha dropped) and opaque RGBA. ok is false for
// other types (16-bit, paletted, CMYK, translucent RGBA); use FromImage.
// If dst has the capacity its buffer is reused.
func FromImage8(dst *Image8, m image.Image) (ok bool) {
	if m == nil {
		return false
	}
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 || w > maxSide || h > maxSide {
		return false
	}
	var pix []uint8
	alloc := func() {
		dst.W, dst.H = w, h
		dst.Pix = grow(dst.Pix, 3*w*h)
		pix = dst.Pix
	}
	switch src := m.(type) {
	case *image.YCbCr:
		if b.Min.X < 0 || b.Min.Y < 0 {
			return false
		}
		alloc()
		fromYCbCr8(pix, w, h, src)
	case *image.RGBA:
		for y := range h {
			row := src.Pix[y*src.Stride : y*src.Stride+4*w]
			for x := range w {
				if row[4*x+3] != 255 {
					return false
				}
			}
		}
		alloc()
		rgbaTo8(pix, w, h, src.Pix, src.Stride)
	case *image.NRGBA:
		alloc()
		rgbaTo8(pix, w, h, src.Pix, src.Stride)
	case *image.Gray:
		alloc()
		for y := range h {
			row := src.Pix[y*src.Stride : y*src.Stride+w]
			o := pix[3*y*w : 3*(y+1)*w]
			for x, v := range row {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	default:
		return false
	}
	return true
}

func rgbaTo8(pix []uint8, w, h int, src []uint8, stride int) {
	for y := range h {
		row := src[y*stride : y*stride+4*w]
		o := pix[3*y*w : 3*(y+1)*w]
		for x := range w {
			o[3*x], o[3*x+1], o[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
		}
	}
}

// fromYCbCr8 is fromYCbCr writing bytes.
func fromYCbCr8(pix []uint8, w, h int, src *image.YCbCr) {
	b := src.Rect
	var sx int
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
		sx = 1
	case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
		sx = 2
	}
	for y := range h {
		yrow := src.Y[src.YOffset(b.Min.X, b.Min.Y+y):]
		yrow = yrow[:w]
		c0 := src.COffset(b.Min.X, b.Min.Y+y)
		cbrow, crrow := src.Cb[c0:], src.Cr[c0:]
		o := pix[3*y*w : 3*(y+1)*w]
		x0 := b.Min.X >> sx
		for x, yv := range yrow {
			ci := ((b.Min.X + x) >> sx) - x0
			yy1 := int32(yv) * 0x10101
			cb1 := int32(cbrow[ci]) - 128
			cr1 := int32(crrow[ci]) - 128
			r := yy1 + 91881*cr1
			if uint32(r)&0xff000000 == 0 {
				r >>= 16
			} else {
				r = ^(r >> 31)
			}
			g := yy1 - 22554*cb1 - 46802*cr1
			if uint32(g)&0xff000000 == 0 {
				g >>= 16
			} else {
				g = ^(g >> 31)
			}
			bl := yy1 + 116130*cb1
			if uint32(bl)&0xff000000 == 0 {
				bl >>= 16
			} else {
				bl = ^(bl >> 31)
			}
			o[3*x], o[3*x+1], o[3*x+2] = uint8(r), uint8(g), uint8(bl)
		}
	}
}

// View8 is View for an 8-bit source: the same parameters are sampled from
// rng (consuming it identically) and the result equals View on
// src.ToImage(), but only the pixels under the crop are ever converted.
func (p *Pipeline) View8(dst []float32, src *Image8, rng *rand.Rand) error {
	if err := src.Validate(); err != nil {
		return err
	}
	if err := p.checkDst(dst); err != nil {
		return err
	}
	return p.apply8(dst, src, p.Sample(rng, src.W, src.H))
}

// Apply8 is Apply for an 8-bit source.
func (p *Pipeline) Apply8(dst []float32, src *Image8, v ViewParams) error {
	if err := src.Validate(); err != nil {
		return err
	}
	if err := p.checkDst(dst); err != nil {
		return err
	}
	if err := v.check(src.W, src.H); err != nil {
		return err
	}
	return p.apply8(dst, src, v)
}

func (p *Pipeline) apply8(dst []float32, src *Image8, v ViewParams) error {
	s := p.pool.Get().(*scratch)
	defer p.pool.Put(s)
	size := p.cfg.Size
	c := v.Crop
	s.xw.compute(c.W, size, 0, size, v.Flip)
	s.yw.compute(c.H, size, 0, size, false)
	s.tmp = resample8(s.img.Pix, size, size, src, c.Left, c.Top, c.W, c.H, &s.xw, &s.yw, s.tmp)
	p.finish(s, v)
	return Normalize(dst, &s.img, p.cfg.Mean, p.cfg.Std)
}

// Eval8 is Eval for an 8-bit source.
func (p *Pipeline) Eval8(dst []float32, src *Image8) error {
	if err := src.Validate(); err != nil {
		return err
	}
	if err := p.checkDst(dst); err != nil {
		return err
	}
	s := p.pool.Get().(*scratch)
	defer p.pool.Put(s)
	size := p.cfg.Size
	nw, nh, left, top := p.evalGeometry(src.W, src.H)
	s.xw.compute(src.W, nw, left, size, false)
	s.yw.compute(src.H, nh, top, size, false)
	s.tmp = resample8(s.img.Pix, size, size, src, 0, 0, src.W, src.H, &s.xw, &s.yw, s.tmp)
	return Normalize(dst, &s.img, p.cfg.Mean, p.cfg.Std)
}

// resample8 is resample reading an interleaved 8-bit source through u8f.
// Every output is accumulated in the same order as by resample, so the
// result equals resample on the converted image bit for bit.
func resample8(dst []float32, ow, oh int, src *Image8, left, top, cw, ch int, xw, yw *axisWeights, tmp []float32) []float32 {
	if verticalFirst(ow, oh, cw, ch, xw, yw) {
		return resampleVFirst8(dst, ow, oh, src, left, top, cw, xw, yw, tmp)
	}
	return resampleHFirst8(dst, ow, oh, src, left, top, ch, xw, yw, tmp)
}

func resampleHFirst8(dst []float32, ow, oh int, src *Image8, left, top, ch int, xw, yw *axisWeights, tmp []float32) []float32 {
	r0, r1 := int(yw.start[0]), int(yw.start[0]+yw.n[0])
	for o := 1; o < oh; o++ {
		r0 = min(r0, int(yw.start[o]))
		r1 = max(r1, int(yw.start[o]+yw.n[o]))
	}
	r1 = min(r1, ch)
	rows := r1 - r0
	tmp = grow(tmp, 3*rows*ow)
	sw := src.W
	xs, xn, xwt, xst := xw.start[:ow], xw.n[:ow], xw.w, xw.stride
	// Horizontal pass, three channels at once: tmp is planar [c][rows][ow].
	for r := range rows {
		y := top + r0 + r
		srow := src.Pix[3*(y*sw+left) : 3*(y+1)*sw]
		t0 := tmp[r*ow : (r+1)*ow]
		t1 := tmp[(rows+r)*ow : (rows+r+1)*ow]
		t2 := tmp[(2*rows+r)*ow : (2*rows+r+1)*ow]
		for o := range t0 {
			n := int(xn[o])
			w := xwt[o*xst : o*xst+n]
			s := srow[3*int(xs[o]):]
			s = s[:3*n]
			var a0, a1, a2 float32
			for k, wk := range w {
				px := s[3*k : 3*k+3 : 3*k+3]
				a0 += wk * u8f[px[0]]
				a1 += wk * u8f[px[1]]
				a2 += wk * u8f[px[2]]
			}
			t0[o], t1[o], t2[o] = a0, a1, a2
		}
	}
	for c := range 3 {
		tc := tmp[c*rows*ow : (c+1)*rows*ow]
		out := dst[c*ow*oh : (c+1)*ow*oh]
		for o := range oh {
			orow := out[o*ow : (o+1)*ow]
			n := int(yw.n[o])
			if n == 0 {
				clear(orow)
				continue
			}
			base := int(yw.start[o]) - r0
			w := yw.w[o*yw.stride : o*yw.stride+n]
			trow := tc[base*ow : (base+1)*ow]
			w0 := w[0]
			for x := range orow {
				orow[x] = w0 * trow[x]
			}
			for k := 1; k < n; k++ {
				wk := w[k]
				trow := tc[(base+k)*ow : (base+k+1)*ow]
				trow = trow[:len(orow)]
				for x := range orow {
					orow[x] += wk * trow[x]
				}
			}
		}
	}
	return tmp
}

func resampleVFirst8(dst []float32, ow, oh int, src *Image8, left, top, cw int, xw, yw *axisWeights, tmp []float32) []float32 {
	tmp = grow(tmp, 3*cw)
	row := tmp[:3*cw] // interleaved, like the source
	sw := src.W
	xs, xn, xwt, xst := xw.start[:ow], xw.n[:ow], xw.w, xw.stride
	for o := range oh {
		n := int(yw.n[o])
		if n == 0 {
			for c := range 3 {
				clear(dst[c*ow*oh+o*ow : c*ow*oh+(o+1)*ow])
			}
			continue
		}
		w := yw.w[o*yw.stride : o*yw.stride+n]
		y0 := top + int(yw.start[o])
		s0 := src.Pix[3*(y0*sw+left) : 3*(y0*sw+left+cw)]
		w0 := w[0]
		for x := range row {
			row[x] = w0 * u8f[s0[x]]
		}
		for k := 1; k < n; k++ {
			wk := w[k]
			sk := src.Pix[3*((y0+k)*sw+left) : 3*((y0+k)*sw+left+cw)]
			sk = sk[:len(row)]
			for x := range row {
				row[x] += wk * u8f[sk[x]]
			}
		}
		o0 := dst[o*ow : (o+1)*ow]
		o1 := dst[ow*oh+o*ow : ow*oh+(o+1)*ow]
		o2 := dst[2*ow*oh+o*ow : 2*ow*oh+(o+1)*ow]
		for ox := range o0 {
			nn := int(xn[ox])
			ww := xwt[ox*xst : ox*xst+nn]
			ss := row[3*int(xs[ox]):]
			ss = ss[:3*nn]
			var a0, a1, a2 float32
			for k, wk := range ww {
				px := ss[3*k : 3*k+3 : 3*k+3]
				a0 += wk * px[0]
				a1 += wk * px[1]
				a2 += wk * px[2]
			}
			o0[ox], o1[ox], o2[ox] = a0, a1, a2
		}
	}
	return tmp
}
