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
	const inv = 1.0 / 255
	switch src := m.(type) {
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			yi := src.YOffset(b.Min.X, b.Min.Y+y)
			for x := 0; x < w; x++ {
				ci := src.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bb := color.YCbCrToRGB(src.Y[yi+x], src.Cb[ci], src.Cr[ci])
				o := y*w + x
				R[o], G[o], B[o] = float32(r)*inv, float32(g)*inv, float32(bb)*inv
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[(y)*src.Stride : (y)*src.Stride+4*w]
			for x := 0; x < w; x++ {
				r, g, bb, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				o := y*w + x
				if a == 255 {
					R[o], G[o], B[o] = float32(r)*inv, float32(g)*inv, float32(bb)*inv
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
				R[o], G[o], B[o] = float32(row[4*x])*inv, float32(row[4*x+1])*inv, float32(row[4*x+2])*inv
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride : y*src.Stride+w]
			for x, v := range row {
				o := y*w + x
				f := float32(v) * inv
				R[o], G[o], B[o] = f, f, f
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.NRGBA64Model.Convert(m.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
				o := y*w + x
				R[o], G[o], B[o] = float32(c.R)/65535, float32(c.G)/65535, float32(c.B)/65535
			}
		}
	}
	return out, nil
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
