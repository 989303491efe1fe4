package augment

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

func randImage8(rng *rand.Rand, w, h int) *Image8 {
	im := NewImage8(w, h)
	for i := range im.Pix {
		im.Pix[i] = uint8(rng.Uint32())
	}
	return im
}

func maxDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestView8MatchesView: View8 on an 8-bit image equals View on its float
// conversion, for random sizes, presets and seeds, and consumes the rng
// identically.
func TestView8MatchesView(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, preset := range []string{"cifar", "imagenet", "stl10"} {
		cfg, err := Preset(preset)
		if err != nil {
			t.Fatal(err)
		}
		if preset == "imagenet" {
			cfg.Size = 64 // keep the test fast; the geometry code is size-agnostic
			cfg.SolarizeP = 0.3
		}
		p, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n := 3 * cfg.Size * cfg.Size
		d8, df := make([]float32, n), make([]float32, n)
		for trial := range 25 {
			w, h := 1+rng.IntN(150), 1+rng.IntN(150)
			if trial%5 == 0 {
				w, h = cfg.Size, cfg.Size
			}
			src8 := randImage8(rng, w, h)
			srcf := src8.ToImage()
			seed := rng.Uint64()
			r8 := rand.New(rand.NewPCG(seed, 1))
			rf := rand.New(rand.NewPCG(seed, 1))
			if err := p.View(d8, src8, r8); err != nil {
				t.Fatal(err)
			}
			if err := p.View(df, srcf, rf); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(d8, df); d > 1e-6 {
				t.Fatalf("%s %dx%d trial %d: View8 differs from View by %g", preset, w, h, trial, d)
			}
			if a, b := r8.Uint64(), rf.Uint64(); a != b {
				t.Fatalf("%s %dx%d: View8 consumed the rng differently from View", preset, w, h)
			}
			if err := p.Eval(d8, src8); err != nil {
				t.Fatal(err)
			}
			if err := p.Eval(df, srcf); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(d8, df); d > 1e-6 {
				t.Fatalf("%s %dx%d: Eval8 differs from Eval by %g", preset, w, h, d)
			}
			// Forced flips and both resample orders (tall and wide crops).
			v := p.Sample(rng, w, h)
			v.Flip = trial%2 == 0
			if err := p.Apply(d8, src8, v); err != nil {
				t.Fatal(err)
			}
			if err := p.Apply(df, srcf, v); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(d8, df); d > 1e-6 {
				t.Fatalf("%s %dx%d: Apply8 differs from Apply by %g", preset, w, h, d)
			}
		}
	}
}

func TestImage8Errors(t *testing.T) {
	cfg, _ := Preset("cifar")
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 3*32*32)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, im := range []*Image8{nil, {W: 0, H: 3}, {W: 4, H: 4, Pix: make([]uint8, 5)}} {
		if err := p.View(dst, im, rng); err == nil {
			t.Errorf("View(%v) accepted a bad image", im)
		}
		if err := p.Eval(dst, im); err == nil {
			t.Errorf("Eval(%v) accepted a bad image", im)
		}
	}
	if err := p.View(dst[:5], NewImage8(8, 8), rng); err == nil {
		t.Error("View accepted a short destination")
	}
	v := p.Sample(rng, 8, 8)
	v.Crop.W = 100
	if err := p.Apply(dst, NewImage8(8, 8), v); err == nil {
		t.Error("Apply accepted a crop outside the image")
	}
	// A nil Source (no image at all) is refused by every entry point.
	v = p.Sample(rng, 8, 8)
	var out Image
	for name, err := range map[string]error{
		"View":        p.View(dst, nil, rng),
		"Apply":       p.Apply(dst, nil, v),
		"Eval":        p.Eval(dst, nil),
		"ApplyImage":  p.ApplyImage(&out, nil, v),
		"EvalImage":   p.EvalImage(&out, nil),
		"ResizedCrop": ResizedCrop(&out, nil, v.Crop, 8),
	} {
		if err == nil {
			t.Errorf("%s accepted a nil source", name)
		}
	}
}

// TestFromImage8MatchesFromImage: the 8-bit conversion of each exact type
// equals FromImage, and inexact types are refused.
func TestFromImage8MatchesFromImage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const w, h = 37, 21
	r := image.Rect(3, 2, 3+w, 2+h)
	nrgba := image.NewNRGBA(r)
	rgba := image.NewRGBA(r)
	gray := image.NewGray(r)
	for i := range nrgba.Pix {
		nrgba.Pix[i] = uint8(rng.Uint32())
		rgba.Pix[i] = uint8(rng.Uint32())
		if i%4 == 3 {
			rgba.Pix[i] = 255
		}
	}
	for i := range gray.Pix {
		gray.Pix[i] = uint8(rng.Uint32())
	}
	var ycc []image.Image
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410} {
		m := image.NewYCbCr(image.Rect(0, 0, w, h), ratio)
		for _, p := range [][]uint8{m.Y, m.Cb, m.Cr} {
			for i := range p {
				p[i] = uint8(rng.Uint32())
			}
		}
		ycc = append(ycc, m, m.SubImage(image.Rect(2, 2, w-1, h-3)))
	}
	for _, m := range append([]image.Image{nrgba, rgba, gray}, ycc...) {
		var im8 Image8
		if !FromImage8(&im8, m) {
			t.Fatalf("%T: FromImage8 refused an exact type", m)
		}
		want, err := FromImage(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := im8.ToImage(); got.W != want.W || got.H != want.H || maxDiff(got.Pix, want.Pix) != 0 {
			t.Fatalf("%T: FromImage8 differs from FromImage", m)
		}
	}
	rgba.Pix[7] = 100 // translucent
	pal := image.NewPaletted(r, color.Palette{color.Black, color.White})
	for _, m := range []image.Image{rgba, pal, image.NewRGBA64(r), image.NewCMYK(r)} {
		var im8 Image8
		if FromImage8(&im8, m) {
			t.Errorf("%T: FromImage8 accepted a type it cannot represent exactly", m)
		}
	}
}

// BenchmarkView8ImageNet is BenchmarkViewImageNet from 8-bit sources.
func BenchmarkView8ImageNet(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	srcs := make([]Source, 16)
	for i := range srcs {
		im := &Image8{}
		if !FromImage8(im, synthImage(rng, 500, 375).ToNRGBA()) {
			b.Fatal("FromImage8 refused NRGBA")
		}
		srcs[i] = im
	}
	benchViews(b, benchPipeline(b, "imagenet"), srcs, rng)
}

// BenchmarkResizedCrop500to224 compares the float and 8-bit resamplers on
// the imagenet preset's random crops (flip included).
func BenchmarkResizedCrop500to224(b *testing.B) {
	p := benchPipeline(b, "imagenet")
	rng := rand.New(rand.NewPCG(2, 2))
	srcf := synthImage(rng, 500, 375)
	src8 := &Image8{}
	FromImage8(src8, srcf.ToNRGBA())
	params := make([]ViewParams, 64)
	for i := range params {
		params[i] = ViewParams{Crop: p.Sample(rng, 500, 375).Crop, Flip: i%2 == 0}
	}
	dst := make([]float32, 3*224*224)
	for _, eight := range []bool{false, true} {
		name := "float"
		if eight {
			name = "uint8"
		}
		b.Run(name, func(b *testing.B) {
			clk := startCPU(b)
			for i := 0; b.Loop(); i++ {
				v := params[i%len(params)]
				var err error
				if eight {
					err = p.Apply(dst, src8, v)
				} else {
					err = p.Apply(dst, srcf, v)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			clk.report(b, "ops")
		})
	}
}
