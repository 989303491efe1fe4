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
	if im == nil {
		return errNilImage
	}
	return checkDims(im.W, im.H, len(im.Pix), "image")
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
	var out *Image
	alloc := func() pixels[float32] {
		out = NewImage(w, h)
		return pixels[float32]{out.Pix, w, h}
	}
	if !fromDecoded(m, w, h, alloc) {
		alloc()
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
