package augment

import "image"

// Image8 is an interleaved 8-bit RGB image: channel c of row y, column x is
// Pix[3*(y*W+x)+c]. It stands for the float Image with values Pix/255; a
// Pipeline reads it directly (it is a Source), so decoders need not convert
// whole images to float32 when only a crop of them is used.
type Image8 struct {
	W, H int
	Pix  []uint8 // len 3*W*H
}

// NewImage8 returns a black 8-bit image of the given size.
func NewImage8(w, h int) *Image8 { return &Image8{W: w, H: h, Pix: make([]uint8, 3*w*h)} }

// Validate reports a nil, empty or inconsistent image.
func (im *Image8) Validate() error {
	if im == nil {
		return errNilImage
	}
	return checkDims(im.W, im.H, len(im.Pix), "8-bit image")
}

// ToImage converts the image to a planar float Image in [0,1] (value/255).
func (im *Image8) ToImage() *Image {
	out := NewImage(im.W, im.H)
	src, dst := pixels[uint8]{im.Pix, im.W, im.H}, pixels[float32]{out.Pix, im.W, im.H}
	for y := range im.H {
		s0, s1, s2 := src.row(y, 0, im.W)
		d0, d1, d2 := dst.row(y, 0, im.W)
		for x := range d0 {
			d0[x], d1[x], d2[x] = at(s0, s1, s2, x)
		}
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
	return fromDecoded(m, w, h, func() pixels[uint8] {
		dst.W, dst.H, dst.Pix = w, h, grow(dst.Pix, 3*w*h)
		return pixels[uint8]{dst.Pix, w, h}
	})
}
