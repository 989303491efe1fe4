package augment

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func randImage(rng *rand.Rand, w, h int) *Image {
	im := NewImage(w, h)
	for i := range im.Pix {
		im.Pix[i] = rng.Float32()
	}
	return im
}

// unfusedView applies the standalone operators one after another; it is the
// oracle for the pipeline's fused implementation (flip folded into the
// resize, jitter passes fused, one-plane blur after grayscale).
func unfusedView(t *testing.T, cfg Config, src *Image, v ViewParams) []float32 {
	t.Helper()
	im := &Image{}
	if err := ResizedCrop(im, src, v.Crop, cfg.Size); err != nil {
		t.Fatal(err)
	}
	if v.Flip {
		HFlip(im)
	}
	if v.Jitter {
		ApplyJitter(im, v.JitterP)
	}
	if v.Gray {
		Grayscale(im)
	}
	if v.Blur {
		if err := GaussianBlur(im, BlurKernelSize(cfg.Size), v.BlurSigma); err != nil {
			t.Fatal(err)
		}
	}
	if v.Solarize {
		Solarize(im, SolarizeThreshold)
	}
	out := make([]float32, 3*cfg.Size*cfg.Size)
	if err := Normalize(out, im, cfg.Mean, cfg.Std); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPipelineMatchesUnfusedOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, preset := range []string{"cifar", "stl10", "imagenet"} {
		cfg, _ := Preset(preset)
		cfg.SolarizeP = 0.3
		if preset == "imagenet" {
			cfg.Size = 64 // keep the test fast; kernel 7
		}
		p, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		trials := 60
		if testing.Short() {
			trials = 15
		}
		for trial := range trials {
			src := randImage(rng, 20+rng.IntN(90), 20+rng.IntN(90))
			v := p.Sample(rng, src.W, src.H)
			got := make([]float32, 3*cfg.Size*cfg.Size)
			if err := p.Apply(got, src, v); err != nil {
				t.Fatal(err)
			}
			want := unfusedView(t, cfg, src, v)
			var maxd float64
			for i := range got {
				maxd = math.Max(maxd, math.Abs(float64(got[i]-want[i])))
			}
			if maxd > 1e-4 {
				t.Fatalf("%s trial %d (%+v): fused pipeline differs from the operators by %g", preset, trial, v, maxd)
			}
		}
	}
}

func TestViewDeterministicAndConcurrent(t *testing.T) {
	cfg, _ := Preset("stl10")
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := randImage(rand.New(rand.NewPCG(1, 2)), 120, 90)
	n := 3 * cfg.Size * cfg.Size
	const views = 24
	serial := make([][]float32, views)
	for i := range serial {
		serial[i] = make([]float32, n)
		if err := p.View(serial[i], src, rand.New(rand.NewPCG(uint64(i), 9))); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(serial[0][:50]) == fmt.Sprint(serial[1][:50]) {
		t.Fatal("different seeds gave identical views")
	}
	var wg sync.WaitGroup
	par := make([][]float32, views)
	for i := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			par[i] = make([]float32, n)
			if err := p.View(par[i], src, rand.New(rand.NewPCG(uint64(i), 9))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range par {
		for j := range par[i] {
			if par[i][j] != serial[i][j] {
				t.Fatalf("view %d differs between serial and concurrent runs at %d", i, j)
			}
		}
	}
}

func TestEval(t *testing.T) {
	cfg, _ := Preset("cifar")
	p, _ := New(cfg)
	src := randImage(rand.New(rand.NewPCG(7, 7)), 32, 32)
	got := make([]float32, 3*32*32)
	if err := p.Eval(got, src); err != nil {
		t.Fatal(err)
	}
	for i, v := range src.Pix {
		c := i / (32 * 32)
		want := (v - cfg.Mean[c]) / cfg.Std[c]
		if math.Abs(float64(got[i]-want)) > 1e-5 {
			t.Fatalf("32px eval at size 32 is not just normalisation: %v vs %v at %d", got[i], want, i)
		}
	}
	// A constant image stays constant through resize and crop.
	flat := NewImage(50, 70)
	for i := range flat.Pix {
		flat.Pix[i] = 0.25
	}
	if err := p.Eval(got, flat); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		c := i / (32 * 32)
		if want := (0.25 - cfg.Mean[c]) / cfg.Std[c]; math.Abs(float64(v-want)) > 1e-5 {
			t.Fatalf("constant image: %v, want %v", v, want)
		}
	}
}

func TestSmallSourceUpsamples(t *testing.T) {
	cfg, _ := Preset("imagenet")
	p, _ := New(cfg)
	rng := rand.New(rand.NewPCG(2, 3))
	dst := make([]float32, 3*224*224)
	for _, sz := range [][2]int{{1, 1}, {3, 2}, {8, 8}, {1, 300}} {
		src := randImage(rng, sz[0], sz[1])
		for range 5 {
			if err := p.View(dst, src, rng); err != nil {
				t.Fatalf("%dx%d: %v", sz[0], sz[1], err)
			}
		}
		if err := p.Eval(dst, src); err != nil {
			t.Fatalf("%dx%d eval: %v", sz[0], sz[1], err)
		}
		for _, v := range dst {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%dx%d: non-finite output", sz[0], sz[1])
			}
		}
	}
}

func TestErrors(t *testing.T) {
	cfg, _ := Preset("cifar")
	p, _ := New(cfg)
	rng := rand.New(rand.NewPCG(1, 1))
	dst := make([]float32, 3*32*32)
	for _, tc := range []struct {
		name string
		src  *Image
		dst  []float32
		want string
	}{
		{"nil", nil, dst, "nil image"},
		{"zero", &Image{}, dst, "zero or negative size"},
		{"short pix", &Image{W: 4, H: 4, Pix: make([]float32, 10)}, dst, "malformed"},
		{"dst", NewImage(4, 4), make([]float32, 5), "destination has 5 floats"},
	} {
		err := p.View(tc.dst, tc.src, rng)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("View %s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
		err = p.Eval(tc.dst, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Eval %s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	if err := p.Apply(dst, NewImage(10, 10), ViewParams{Crop: CropParams{Top: 5, Left: 0, H: 6, W: 3}}); err == nil {
		t.Error("Apply accepted a crop outside the image")
	}
	if err := GaussianBlur(NewImage(5, 5), 4, 1); err == nil {
		t.Error("GaussianBlur accepted an even kernel")
	}
	if _, err := Preset("mnist"); err == nil || !strings.Contains(err.Error(), "cifar") {
		t.Errorf("unknown preset error %v should list the known ones", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, name := range PresetNames() {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("preset %s invalid: %v", name, err)
		}
	}
	c, _ := Preset("imagenet")
	if c.Size != 224 || BlurKernelSize(c.Size) != 23 || BlurKernelSize(96) != 9 || BlurKernelSize(32) != 3 {
		t.Errorf("imagenet size/kernel: %d/%d, stl10 kernel %d", c.Size, BlurKernelSize(c.Size), BlurKernelSize(96))
	}
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Size = 0 }, "size"},
		{func(c *Config) { c.CropScaleMin = 0 }, "crop scale"},
		{func(c *Config) { c.CropScaleMax = 0.01 }, "crop scale"},
		{func(c *Config) { c.CropRatioMin = -1 }, "crop ratio"},
		{func(c *Config) { c.FlipP = 1.5 }, "flip_p"},
		{func(c *Config) { c.JitterP = math.NaN() }, "jitter_p"},
		{func(c *Config) { c.JitterStrength = 3 }, "jitter_strength"},
		{func(c *Config) { c.BlurSigmaMin = 0 }, "blur sigma"},
		{func(c *Config) { c.Std[1] = 0 }, "std[1]"},
	} {
		c, _ := Preset("imagenet")
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want mention of %q", err, tc.want)
		}
		if _, err := New(c); err == nil {
			t.Errorf("New accepted an invalid config (%s)", tc.want)
		}
	}
}

func TestHFlipAndSolarize(t *testing.T) {
	im := &Image{W: 3, H: 1, Pix: []float32{0.1, 0.2, 0.9, 0.4, 0.5, 0.6, 0.7, 0.8, 0.3}}
	HFlip(im)
	want := []float32{0.9, 0.2, 0.1, 0.6, 0.5, 0.4, 0.3, 0.8, 0.7}
	for i := range want {
		if im.Pix[i] != want[i] {
			t.Fatalf("hflip: %v, want %v", im.Pix, want)
		}
	}
	Solarize(im, 0.5)
	for i, v := range want {
		if v >= 0.5 {
			v = 1 - v
		}
		if math.Abs(float64(im.Pix[i]-v)) > 1e-7 {
			t.Fatalf("solarize: %v at %d, want %v", im.Pix[i], i, v)
		}
	}
}

// refHue is a literal transcription of torchvision's _rgb2hsv, the hue
// shift and _hsv2rgb (sector switch, float64), the oracle for hueShift's
// branch-free rearrangement across many random shifts.
func refHue(r, g, b, shift float64) (float64, float64, float64) {
	maxc := math.Max(r, math.Max(g, b))
	minc := math.Min(r, math.Min(g, b))
	eqc := maxc == minc
	cr := maxc - minc
	den := maxc
	if eqc {
		den = 1
	}
	s := cr / den
	crd := cr
	if eqc {
		crd = 1
	}
	rc, gc, bc := (maxc-r)/crd, (maxc-g)/crd, (maxc-b)/crd
	var h float64
	switch {
	case maxc == r:
		h = bc - gc
	case maxc == g:
		h = 2 + rc - bc
	default:
		h = 4 + gc - rc
	}
	h = math.Mod(h/6+1, 1)
	h = h + shift
	h -= math.Floor(h)
	v := maxc
	i := math.Floor(h * 6)
	f := h*6 - i
	p := math.Min(math.Max(v*(1-s), 0), 1)
	q := math.Min(math.Max(v*(1-s*f), 0), 1)
	t := math.Min(math.Max(v*(1-s*(1-f)), 0), 1)
	switch int(i) % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}

func TestHueShiftMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for i := range 200000 {
		r, g, b := rng.Float32(), rng.Float32(), rng.Float32()
		switch i % 7 { // exercise ties between channels
		case 1:
			g = r
		case 2:
			b = g
		case 3:
			r, g = b, b
		}
		shift := float32(rng.Float64() - 0.5)
		gr, gg, gb := hueShift(r, g, b, shift)
		wr, wg, wb := refHue(float64(r), float64(g), float64(b), float64(shift))
		d := math.Max(math.Abs(float64(gr)-wr), math.Max(math.Abs(float64(gg)-wg), math.Abs(float64(gb)-wb)))
		if d > 2e-5 {
			t.Fatalf("hue(%v,%v,%v; %v) = %v %v %v, reference %v %v %v", r, g, b, shift, gr, gg, gb, wr, wg, wb)
		}
	}
}

// Both pass orders of the separable resize must agree (they differ only
// in float32 rounding); resample picks one by cost.
func TestResamplePassOrders(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, tc := range [][5]int{{50, 40, 7, 5, 32}, {200, 150, 180, 120, 32}, {10, 90, 8, 80, 24}, {90, 10, 85, 6, 24}} {
		src := randImage(rng, tc[0], tc[1])
		cw, ch, size := tc[2], tc[3], tc[4]
		left, top := rng.IntN(tc[0]-cw+1), rng.IntN(tc[1]-ch+1)
		var xw, yw axisWeights
		xw.compute(cw, size, 0, size, rng.IntN(2) == 0)
		yw.compute(ch, size, 0, size, false)
		a := make([]float32, 3*size*size)
		b := make([]float32, 3*size*size)
		px := pixels[float32]{src.Pix, src.W, src.H}
		resampleHFirst(a, size, size, px, left, top, cw, ch, &xw, &yw, nil)
		resampleVFirst(b, size, size, px, left, top, cw, ch, &xw, &yw, nil)
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > 1e-5 {
				t.Fatalf("%v: pass orders differ at %d: %v vs %v", tc, i, a[i], b[i])
			}
		}
	}
}
