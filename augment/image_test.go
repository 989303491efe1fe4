package augment

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

// FromImage's fast paths must agree with the generic color-model
// conversion for every decoder output type.
func TestFromImageMatchesColorModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	r := image.Rect(3, 1, 3+13, 1+9) // odd size, non-zero origin
	var imgs []image.Image
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410} {
		m := image.NewYCbCr(r, ratio)
		for _, s := range [][]uint8{m.Y, m.Cb, m.Cr} {
			for i := range s {
				s[i] = uint8(rng.IntN(256))
			}
		}
		imgs = append(imgs, m, m.SubImage(image.Rect(4, 2, 12, 9)))
	}
	rgba := image.NewRGBA(r)
	nrgba := image.NewNRGBA(r)
	gray := image.NewGray(r)
	cmyk := image.NewCMYK(r)
	pal := image.NewPaletted(r, color.Palette{color.RGBA{255, 0, 0, 255}, color.Gray{90}, color.NRGBA{10, 200, 30, 128}})
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(rng.IntN(256))
		nrgba.Pix[i] = uint8(rng.IntN(256))
		cmyk.Pix[i] = uint8(rng.IntN(256))
	}
	for i := 0; i < len(rgba.Pix); i += 4 { // valid premultiplied colours
		a := rgba.Pix[i+3]
		for c := 0; c < 3; c++ {
			rgba.Pix[i+c] = min(rgba.Pix[i+c], a)
		}
	}
	for i := range gray.Pix {
		gray.Pix[i] = uint8(rng.IntN(256))
		pal.Pix[i] = uint8(rng.IntN(3))
	}
	imgs = append(imgs, rgba, nrgba, gray, cmyk, pal)
	for k, m := range imgs {
		got, err := FromImage(m)
		if err != nil {
			t.Fatal(err)
		}
		want := NewImage(m.Bounds().Dx(), m.Bounds().Dy())
		fromGeneric(want, m)
		for i := range got.Pix {
			if math.Abs(float64(got.Pix[i]-want.Pix[i])) > 1.0/255+1e-6 {
				t.Fatalf("image %d (%T): value %d = %v, generic %v", k, m, i, got.Pix[i], want.Pix[i])
			}
		}
	}
	// Exact check of the YCbCr path against color.YCbCrToRGB.
	m := imgs[4].(*image.YCbCr) // 4:2:0
	got, _ := FromImage(m)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := m.YCbCrAt(x, y)
			rr, gg, bb := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
			o := (y-r.Min.Y)*got.W + (x - r.Min.X)
			n := got.W * got.H
			if got.Pix[o] != float32(rr)/255 || got.Pix[n+o] != float32(gg)/255 || got.Pix[2*n+o] != float32(bb)/255 {
				t.Fatalf("YCbCr pixel (%d,%d) mismatch", x, y)
			}
		}
	}
	if _, err := FromImage(image.NewRGBA(image.Rect(0, 0, 0, 5))); err == nil {
		t.Error("FromImage accepted an empty image")
	}
	// Round trip through 8 bits.
	back := got.ToNRGBA()
	again, _ := FromImage(back)
	for i := range got.Pix {
		if got.Pix[i] != again.Pix[i] {
			t.Fatal("ToNRGBA/FromImage round trip is not exact for 8-bit values")
		}
	}
}
