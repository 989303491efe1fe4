package augment

import (
	"errors"
	"fmt"
	"image"
	"unsafe"
)

// Source is a decoded RGB image that a Pipeline reads: *Image (planar
// float32) or *Image8 (interleaved bytes, value/255). Both go through the
// same code; the resampler, which reads only the pixels under the crop, is
// compiled once for each pixel layout (see sample), so a view of an 8-bit
// image equals the view of its float conversion bit for bit, and neither
// pays an interface call per pixel. The set is closed: decoders produce
// one of the two.
type Source interface {
	// Validate reports a nil, empty or inconsistent image.
	Validate() error
	// dims returns the width and height.
	dims() (w, h int)
	// resample is the package resample over the image's pixels.
	resample(dst []float32, ow, oh, left, top, cw, ch int, xw, yw *axisWeights, tmp []float32) []float32
}

func (im *Image) dims() (int, int)  { return im.W, im.H }
func (im *Image8) dims() (int, int) { return im.W, im.H }

func (im *Image) resample(dst []float32, ow, oh, left, top, cw, ch int, xw, yw *axisWeights, tmp []float32) []float32 {
	return resample(dst, ow, oh, pixels[float32]{im.Pix, im.W, im.H}, left, top, cw, ch, xw, yw, tmp)
}

func (im *Image8) resample(dst []float32, ow, oh, left, top, cw, ch int, xw, yw *axisWeights, tmp []float32) []float32 {
	return resample(dst, ow, oh, pixels[uint8]{im.Pix, im.W, im.H}, left, top, cw, ch, xw, yw, tmp)
}

var errNilImage = errors.New("augment: nil image")

// validSource is src.Validate that also refuses a nil interface.
func validSource(src Source) error {
	if src == nil {
		return errNilImage
	}
	return src.Validate()
}

// checkDims is the Validate of both image types for a non-nil image: n is
// the length of Pix and what names the image type in the message.
func checkDims(w, h, n int, what string) error {
	switch {
	case w <= 0 || h <= 0:
		return fmt.Errorf("augment: image has zero or negative size %dx%d", w, h)
	case w > maxSide || h > maxSide:
		return fmt.Errorf("augment: image size %dx%d exceeds the %d pixel limit per side", w, h, maxSide)
	case n != 3*w*h:
		return fmt.Errorf("augment: malformed %dx%d %s: %d values, want 3*W*H = %d", w, h, what, n, 3*w*h)
	}
	return nil
}

// sample is the stored type of one channel value: float32 in [0,1] in the
// planar Image, uint8 (value/255) in the interleaved Image8. Code generic
// over it is compiled once per type (the two have different GC shapes), and
// interleaved[T]() is a constant in each copy, so its branches compile away
// and the per-pixel helpers below inline to plain loads.
type sample interface{ float32 | uint8 }

// interleaved reports whether images of T store the three channels of a
// pixel next to each other (Image8) rather than in three planes (Image).
// The per-pixel helpers test unsafe.Sizeof themselves: a call to it from
// another generic function, even inlined, loads and nil-checks a
// sub-dictionary on every use.
func interleaved[T sample]() bool {
	var z T
	return unsafe.Sizeof(z) == 1
}

// pixels is a w x h image's samples in T's layout.
type pixels[T sample] struct {
	pix  []T
	w, h int
}

// row returns pixels x .. x+n-1 of row y as the runs of channels 0, 1, 2
// (planar), or the interleaved run in c0 alone, c1 and c2 nil. The
// per-pixel helpers below take such runs as three slices, not as one
// struct: a struct that large would be copied through memory in every
// iteration of the loops that call them.
func (p pixels[T]) row(y, x, n int) (c0, c1, c2 []T) {
	o := y*p.w + x
	if interleaved[T]() {
		return p.pix[3*o : 3*(o+n)], nil, nil
	}
	pl := p.w * p.h
	return p.pix[o : o+n], p.pix[pl+o : pl+o+n], p.pix[2*pl+o : 2*pl+o+n]
}

// span returns pixels x .. x+n-1 of a run.
func span[T sample](c0, c1, c2 []T, x, n int) ([]T, []T, []T) {
	var z T
	if unsafe.Sizeof(z) == 1 { // interleaved[T](), spelt out: see interleaved
		return c0[3*x : 3*(x+n)], nil, nil
	}
	return c0[x : x+n], c1[x : x+n], c2[x : x+n]
}

// at returns the channel values of pixel k of a run in [0,1]: a byte b is
// u8f[b], b/255 as FromImage computes it.
func at[T sample](c0, c1, c2 []T, k int) (float32, float32, float32) {
	var z T
	if unsafe.Sizeof(z) == 1 { // interleaved[T](), spelt out: see interleaved
		p := c0[3*k : 3*k+3 : 3*k+3]
		return u8f[uint8(p[0])], u8f[uint8(p[1])], u8f[uint8(p[2])]
	}
	return float32(c0[k]), float32(c1[k]), float32(c2[k])
}

// set stores the 8-bit colour (r, g, b) as pixel k of a run.
func set[T sample](c0, c1, c2 []T, k int, r, g, b uint8) {
	var z T
	if unsafe.Sizeof(z) == 1 { // interleaved[T](), spelt out: see interleaved
		p := c0[3*k : 3*k+3 : 3*k+3]
		p[0], p[1], p[2] = T(r), T(g), T(b)
		return
	}
	c0[k], c1[k], c2[k] = T(u8f[r]), T(u8f[g]), T(u8f[b])
}

// fromDecoded converts the w x h decoder output m, if its colours are
// 8-bit (YCbCr from JPEG, RGBA, NRGBA, Gray from PNG), into the pixels that
// alloc returns, un-premultiplying alpha and dropping it; pixels with zero
// alpha are not written. It reports false, having allocated nothing, for
// other types, for YCbCr with a negative origin, and, when T is a byte, for
// translucent RGBA, whose un-premultiplied colours bytes cannot hold.
func fromDecoded[T sample](m image.Image, w, h int, alloc func() pixels[T]) bool {
	switch src := m.(type) {
	case *image.YCbCr:
		if src.Rect.Min.X < 0 || src.Rect.Min.Y < 0 {
			return false
		}
		fromYCbCr(alloc(), src)
	case *image.RGBA:
		if interleaved[T]() && !opaque(src, w, h) {
			return false
		}
		p := alloc()
		for y := range h {
			in := src.Pix[y*src.Stride : y*src.Stride+4*w]
			o0, o1, o2 := p.row(y, 0, w)
			for x := range w {
				c := in[4*x : 4*x+4 : 4*x+4]
				if a := c[3]; a == 255 {
					set(o0, o1, o2, x, c[0], c[1], c[2])
				} else if a != 0 { // only for float images (opaque above)
					fa := float32(a)
					o0[x], o1[x], o2[x] = T(float32(c[0])/fa), T(float32(c[1])/fa), T(float32(c[2])/fa)
				}
			}
		}
	case *image.NRGBA:
		p := alloc()
		for y := range h {
			in := src.Pix[y*src.Stride : y*src.Stride+4*w]
			o0, o1, o2 := p.row(y, 0, w)
			for x := range w {
				c := in[4*x : 4*x+3 : 4*x+3]
				set(o0, o1, o2, x, c[0], c[1], c[2])
			}
		}
	case *image.Gray:
		p := alloc()
		for y := range h {
			in := src.Pix[y*src.Stride : y*src.Stride+w]
			o0, o1, o2 := p.row(y, 0, w)
			for x, v := range in {
				set(o0, o1, o2, x, v, v, v)
			}
		}
	default:
		return false
	}
	return true
}

// opaque reports whether every pixel of the w x h image m has alpha 255.
func opaque(m *image.RGBA, w, h int) bool {
	for y := range h {
		in := m.Pix[y*m.Stride : y*m.Stride+4*w]
		for x := range w {
			if in[4*x+3] != 255 {
				return false
			}
		}
	}
	return true
}

// fromYCbCr converts JPEG decoder output with the exact integer arithmetic
// of color.YCbCrToRGB, inlined (a per-pixel call is ~4x slower).
func fromYCbCr[T sample](p pixels[T], src *image.YCbCr) {
	b := src.Rect
	// Horizontal chroma subsampling shift (COffset handles the vertical).
	var sx int
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
		sx = 1
	case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
		sx = 2
	}
	for y := range p.h {
		yrow := src.Y[src.YOffset(b.Min.X, b.Min.Y+y):]
		yrow = yrow[:p.w]
		c0 := src.COffset(b.Min.X, b.Min.Y+y)
		cbrow, crrow := src.Cb[c0:], src.Cr[c0:]
		o0, o1, o2 := p.row(y, 0, p.w)
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
			set(o0, o1, o2, x, uint8(r), uint8(g), uint8(bl))
		}
	}
}
