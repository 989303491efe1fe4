// Package augment implements SimCLR's data augmentations (paper appendix A)
// with torchvision's semantics, in pure Go.
package augment

import (
	"errors"
	"fmt"
	"image"
	"image/color"
)

// Image is a planar RGB image with float32 values in [0,1]: channel c, row y,
// column x is Pix[(c*H+y)*W+x].
type Image struct {
	W, H int
	Pix  []float32 // len 3*W*H
}

// NewImage returns a black image of the given size.
func NewImage(w, h int) *Image { return &Image{W: w, H: h, Pix: make([]float32, 3*w*h)} }

// Validate reports a nil, empty or inconsistent image.
func (im *Image) Validate() error {
	switch {
	case im == nil:
		return errors.New("augment: nil image")
	case im.W <= 0 || im.H <= 0:
		return fmt.Errorf("augment: image has zero or negative size %dx%d", im.W, im.H)
	case im.W > maxSide || im.H > maxSide:
		return fmt.Errorf("augment: image size %dx%d exceeds the %d pixel limit per side", im.W, im.H, maxSide)
	case len(im.Pix) != 3*im.W*im.H:
		return fmt.Errorf("augment: malformed %dx%d image: %d values, want 3*W*H = %d", im.W, im.H, len(im.Pix), 3*im.W*im.H)
	}
	return nil
}

const maxSide = 1 << 16

// FromImage converts a decoded image to a planar RGB float image in [0,1].
// Gray, CMYK and paletted images become RGB; alpha is dropped (the colour
// is un-premultiplied, as PIL's convert("RGB") does). Common decoder output
// types (YCbCr from JPEG, RGBA/NRGBA from PNG, Gray) take fast paths.
func FromImage(m image.Image) (*Image, error) {
	if m == nil {
		return nil, errors.New("augment: nil image")
	}
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("augment: image has zero size %dx%d", w, h)
	}
	if w > maxSide || h > maxSide {
		return nil, fmt.Errorf("augment: image size %dx%d exceeds the %d pixel limit per side", w, h, maxSide)
	}
	out := NewImage(w, h)
	n := w * h
	R, G, B := out.Pix[:n], out.Pix[n:2*n], out.Pix[2*n:]
	switch src := m.(type) {
	case *image.YCbCr:
		if b.Min.X < 0 || b.Min.Y < 0 {
			fromGeneric(out, m)
			break
		}
		fromYCbCr(out, src)
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[(y)*src.Stride : (y)*src.Stride+4*w]
			for x := 0; x < w; x++ {
				r, g, bb, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				o := y*w + x
				if a == 255 {
					R[o], G[o], B[o] = u8f[r], u8f[g], u8f[bb]
				} else if a != 0 {
					fa := float32(a)
					R[o], G[o], B[o] = float32(r)/fa, float32(g)/fa, float32(bb)/fa
				}
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride : y*src.Stride+4*w]
			for x := 0; x < w; x++ {
				o := y*w + x
				R[o], G[o], B[o] = u8f[row[4*x]], u8f[row[4*x+1]], u8f[row[4*x+2]]
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride : y*src.Stride+w]
			for x, v := range row {
				o := y*w + x
				f := u8f[v]
				R[o], G[o], B[o] = f, f, f
			}
		}
	default:
		fromGeneric(out, m)
	}
	return out, nil
}

// fromGeneric converts any image through color.NRGBA64 (un-premultiplied).
func fromGeneric(out *Image, m image.Image) {
	b := m.Bounds()
	w, h := out.W, out.H
	n := w * h
	R, G, B := out.Pix[:n], out.Pix[n:2*n], out.Pix[2*n:]
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA64Model.Convert(m.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
			o := y*w + x
			R[o], G[o], B[o] = float32(c.R)/65535, float32(c.G)/65535, float32(c.B)/65535
		}
	}
}

// ToNRGBA converts the image to 8-bit RGB (opaque), clamping to [0,1].
func (im *Image) ToNRGBA() *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, im.W, im.H))
	n := im.W * im.H
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			v := im.Pix[c*n+i]
			if !(v > 0) {
				v = 0
			} else if v > 1 {
				v = 1
			}
			out.Pix[4*i+c] = uint8(v*255 + 0.5)
		}
		out.Pix[4*i+3] = 255
	}
	return out
}

// u8f maps a byte to [0,1].
var u8f = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return
}()

// fromYCbCr converts JPEG decoder output with the exact integer arithmetic
// of color.YCbCrToRGB, inlined (a per-pixel call is ~4x slower).
func fromYCbCr(out *Image, src *image.YCbCr) {
	b := src.Rect
	w, h := out.W, out.H
	n := w * h
	R, G, B := out.Pix[:n], out.Pix[n:2*n], out.Pix[2*n:]
	// Horizontal and vertical chroma subsampling shifts.
	// Horizontal chroma subsampling shift (COffset handles the vertical).
	var sx int
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
		sx = 1
	case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
		sx = 2
	}
	for y := 0; y < h; y++ {
		yrow := src.Y[src.YOffset(b.Min.X, b.Min.Y+y):]
		yrow = yrow[:w]
		c0 := src.COffset(b.Min.X, b.Min.Y+y)
		cbrow, crrow := src.Cb[c0:], src.Cr[c0:]
		ro, go_, bo := R[y*w:(y+1)*w], G[y*w:(y+1)*w], B[y*w:(y+1)*w]
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
			ro[x], go_[x], bo[x] = u8f[uint8(r)], u8f[uint8(g)], u8f[uint8(bl)]
		}
	}
}
