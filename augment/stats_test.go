package augment

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// Seeded statistical checks of the samplers. Tolerances are 5 standard
// errors (or a KS / chi-square critical value at p = 0.001), so a correct
// sampler passes for essentially every seed; the seeds are fixed anyway.

func checkRate(t *testing.T, name string, hits, n int, p float64) {
	t.Helper()
	rate := float64(hits) / float64(n)
	se := math.Sqrt(p * (1 - p) / float64(n))
	if math.Abs(rate-p) > 5*se {
		t.Errorf("%s rate %.4f, want %.4f ± %.4f (5 s.e.)", name, rate, p, 5*se)
	}
}

func TestSamplerRates(t *testing.T) {
	cfg, _ := Preset("imagenet")
	cfg.SolarizeP = 0.1
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	const n = 40000
	var flip, jit, gray, blur, sol int
	var sigmaSum float64
	for range n {
		v := p.Sample(rng, 500, 375)
		flip += b2i(v.Flip)
		jit += b2i(v.Jitter)
		gray += b2i(v.Gray)
		sol += b2i(v.Solarize)
		if v.Blur {
			blur++
			if v.BlurSigma < cfg.BlurSigmaMin || v.BlurSigma > cfg.BlurSigmaMax {
				t.Fatalf("blur sigma %v outside [%v, %v]", v.BlurSigma, cfg.BlurSigmaMin, cfg.BlurSigmaMax)
			}
			sigmaSum += v.BlurSigma
		}
		if !v.Jitter && v.JitterP != (JitterParams{}) {
			t.Fatal("jitter parameters set although jitter is not applied")
		}
	}
	checkRate(t, "flip", flip, n, cfg.FlipP)
	checkRate(t, "jitter", jit, n, cfg.JitterP)
	checkRate(t, "grayscale", gray, n, cfg.GrayP)
	checkRate(t, "blur", blur, n, cfg.BlurP)
	checkRate(t, "solarize", sol, n, cfg.SolarizeP)
	// sigma ~ U(0.1, 2): mean 1.05, sd 1.9/sqrt(12).
	mean := sigmaSum / float64(blur)
	se := 1.9 / math.Sqrt(12) / math.Sqrt(float64(blur))
	if math.Abs(mean-1.05) > 5*se {
		t.Errorf("blur sigma mean %.4f, want 1.05 ± %.4f", mean, 5*se)
	}

	// The cifar preset never blurs or solarises.
	cifar, _ := Preset("cifar")
	pc, _ := New(cifar)
	for range 2000 {
		if v := pc.Sample(rng, 32, 32); v.Blur || v.Solarize {
			t.Fatal("cifar preset sampled blur or solarize")
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestJitterSampler(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 48000
	perms := map[[4]int]int{}
	var sum [4]float64
	bounds := [4][2]float32{{0.6, 1.4}, {0.6, 1.4}, {0.6, 1.4}, {-0.1, 0.1}}
	for range n {
		p := SampleJitter(rng, 0.4, 0.4, 0.4, 0.1)
		perms[p.Order]++
		vals := [4]float32{p.Brightness, p.Contrast, p.Saturation, p.Hue}
		for i, v := range vals {
			if v < bounds[i][0] || v > bounds[i][1] {
				t.Fatalf("factor %d = %v outside %v", i, v, bounds[i])
			}
			sum[i] += float64(v)
		}
	}
	// Order: all 24 permutations, uniformly (chi-square, 23 dof, p=0.001 -> 49.73).
	if len(perms) != 24 {
		t.Fatalf("saw %d distinct orders, want 24", len(perms))
	}
	exp := float64(n) / 24
	var chi2 float64
	for perm, c := range perms {
		seen := [4]bool{}
		for _, op := range perm {
			seen[op] = true
		}
		if seen != [4]bool{true, true, true, true} {
			t.Fatalf("order %v is not a permutation", perm)
		}
		chi2 += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	if chi2 > 49.73 {
		t.Errorf("order permutation chi-square %.1f > 49.73 (23 dof, p=0.001)", chi2)
	}
	// Factor means: U(0.6,1.4) has mean 1, sd 0.8/sqrt(12); hue U(-.1,.1).
	for i, want := range [4]float64{1, 1, 1, 0} {
		width := float64(bounds[i][1] - bounds[i][0])
		se := width / math.Sqrt(12) / math.Sqrt(n)
		if m := sum[i] / n; math.Abs(m-want) > 5*se {
			t.Errorf("factor %d mean %.4f, want %.4f ± %.4f", i, m, want, 5*se)
		}
	}
	// Strength 0 leaves the operator at identity.
	p := SampleJitter(rng, 0, 0.5, 0, 0)
	if p.Brightness != 1 || p.Saturation != 1 || p.Hue != 0 || p.Contrast == 1 {
		t.Errorf("zero strengths not identity: %+v", p)
	}
	// brightness range is clamped at 0: U(max(0, 1-1.5), 2.5).
	for range 1000 {
		if b := SampleJitter(rng, 1.5, 0, 0, 0).Brightness; b < 0 || b > 2.5 {
			t.Fatalf("brightness %v outside [0, 2.5]", b)
		}
	}
}

// refCrop is an independent transcription of torchvision's
// RandomResizedCrop.get_params (Python source, v0.14), used as the oracle
// for the distribution of SampleCrop. It reports whether the fallback fired.
func refCrop(rng *rand.Rand, width, height int, scale, ratio [2]float64) (c CropParams, fallback bool) {
	area := float64(height * width)
	for attempt := 0; attempt < 10; attempt++ {
		targetArea := area * (scale[0] + rng.Float64()*(scale[1]-scale[0]))
		logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
		aspect := math.Exp(logLo + rng.Float64()*(logHi-logLo))
		w := int(math.Round(math.Sqrt(targetArea * aspect)))
		h := int(math.Round(math.Sqrt(targetArea / aspect)))
		if 0 < w && w <= width && 0 < h && h <= height {
			i := rng.IntN(height - h + 1)
			j := rng.IntN(width - w + 1)
			return CropParams{Top: i, Left: j, H: h, W: w}, false
		}
	}
	inRatio := float64(width) / float64(height)
	var w, h int
	if inRatio < math.Min(ratio[0], ratio[1]) {
		w = width
		h = int(math.Round(float64(w) / math.Min(ratio[0], ratio[1])))
	} else if inRatio > math.Max(ratio[0], ratio[1]) {
		h = height
		w = int(math.Round(float64(h) * math.Max(ratio[0], ratio[1])))
	} else {
		w, h = width, height
	}
	return CropParams{Top: (height - h) / 2, Left: (width - w) / 2, H: h, W: w}, true
}

// ksTwoSample returns the two-sample Kolmogorov-Smirnov statistic.
func ksTwoSample(a, b []float64) float64 {
	sort.Float64s(a)
	sort.Float64s(b)
	var i, j int
	var d float64
	for i < len(a) && j < len(b) {
		x := math.Min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = math.Max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

func TestCropDistribution(t *testing.T) {
	scale, ratio := [2]float64{0.08, 1}, [2]float64{3.0 / 4, 4.0 / 3}
	n := 20000
	if testing.Short() {
		n = 5000
	}
	for _, sz := range [][2]int{{32, 32}, {500, 375}, {120, 20}, {7, 9}} {
		w, h := sz[0], sz[1]
		rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
		ref := rand.New(rand.NewPCG(uint64(w)+1000, uint64(h)))
		area, refArea := make([]float64, n), make([]float64, n)
		aspect, refAspect := make([]float64, n), make([]float64, n)
		xc, refXc := make([]float64, n), make([]float64, n)
		var fallbacks, refFallbacks int
		for i := range n {
			c := SampleCrop(rng, w, h, scale, ratio)
			if err := c.check(w, h); err != nil {
				t.Fatalf("%dx%d: %v", w, h, err)
			}
			// A centred crop with the clamped ratio is what the fallback gives.
			if c == centerFallback(w, h, ratio) {
				fallbacks++
			}
			r, fb := refCrop(ref, w, h, scale, ratio)
			if fb || r == centerFallback(w, h, ratio) {
				refFallbacks++
			}
			area[i], refArea[i] = float64(c.W*c.H)/float64(w*h), float64(r.W*r.H)/float64(w*h)
			aspect[i], refAspect[i] = float64(c.W)/float64(c.H), float64(r.W)/float64(r.H)
			xc[i], refXc[i] = (float64(c.Left)+float64(c.W)/2)/float64(w), (float64(r.Left)+float64(r.W)/2)/float64(w)
		}
		// KS critical value at p = 0.001 for two samples of size n.
		crit := 1.95 * math.Sqrt(2/float64(n))
		for _, cmp := range []struct {
			name string
			a, b []float64
		}{{"area fraction", area, refArea}, {"aspect ratio", aspect, refAspect}, {"x centre", xc, refXc}} {
			if d := ksTwoSample(cmp.a, cmp.b); d > crit {
				t.Errorf("%dx%d: %s KS distance %.4f > %.4f", w, h, cmp.name, d, crit)
			}
		}
		pf, pr := float64(fallbacks)/float64(n), float64(refFallbacks)/float64(n)
		se := math.Sqrt((pr*(1-pr) + 1e-4) * 2 / float64(n))
		if math.Abs(pf-pr) > 5*se {
			t.Errorf("%dx%d: fallback-shaped crops %.4f vs reference %.4f", w, h, pf, pr)
		}
		t.Logf("%dx%d: mean area %.4f (ref %.4f), fallback rate %.4f (ref %.4f)", w, h, mean(area), mean(refArea), pf, pr)
	}
	// A 120x20 strip cannot fit most tries: the fallback is common and is a
	// centred crop of aspect 4/3 (h = 20, w = round(20*4/3) = 27).
	if fb := centerFallback(120, 20, ratio); fb != (CropParams{Top: 0, Left: 46, H: 20, W: 27}) {
		t.Errorf("fallback for 120x20: %v", fb)
	}
	if fb := centerFallback(10, 50, ratio); fb != (CropParams{Top: 18, Left: 0, H: 13, W: 10}) {
		t.Errorf("fallback for 10x50: %v", fb)
	}
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// For a square image, a try with area fraction A and log-uniform aspect r
// in [3/4, 4/3] fits iff A*max(r, 1/r) <= 1, which has probability 1 for
// A <= 3/4 and -ln(A)/ln(4/3) above. The accepted area therefore has density
// proportional to g(A) on [0.08, 1] (the 10-try fallback is ~1e-9 likely).
// Compare SampleCrop with that CDF by a one-sample KS test.
func TestCropAreaTheory(t *testing.T) {
	L := math.Log(4.0 / 3)
	g := func(a float64) float64 {
		if a <= 0.75 {
			return 1
		}
		return -math.Log(a) / L
	}
	// Tabulate the CDF by the trapezoid rule.
	const steps = 100000
	cdfX := make([]float64, steps+1)
	cdfY := make([]float64, steps+1)
	for i := 1; i <= steps; i++ {
		a0, a1 := 0.08+0.92*float64(i-1)/steps, 0.08+0.92*float64(i)/steps
		cdfX[i] = a1
		cdfY[i] = cdfY[i-1] + (g(a0)+g(a1))/2*(a1-a0)
	}
	cdfX[0] = 0.08
	z := cdfY[steps]
	cdf := func(x float64) float64 {
		i := sort.SearchFloat64s(cdfX, x)
		if i > steps {
			return 1
		}
		return cdfY[i] / z
	}

	rng := rand.New(rand.NewPCG(5, 6))
	const n = 20000
	a := make([]float64, n)
	for i := range a {
		c := SampleCrop(rng, 1000, 1000, [2]float64{0.08, 1}, [2]float64{3.0 / 4, 4.0 / 3})
		a[i] = float64(c.W*c.H) / 1e6
	}
	sort.Float64s(a)
	if a[0] < 0.079 || a[n-1] > 1 {
		t.Errorf("area fraction range [%v, %v] outside [0.08, 1]", a[0], a[n-1])
	}
	var d float64
	for i, x := range a {
		f := cdf(x)
		d = math.Max(d, math.Max(math.Abs(float64(i+1)/n-f), math.Abs(float64(i)/n-f)))
	}
	// KS critical value at p = 0.001 plus 0.003 for the integer rounding of w, h.
	if crit := 1.95/math.Sqrt(n) + 0.003; d > crit {
		t.Errorf("area fraction vs theory: KS distance %.4f > %.4f", d, crit)
	}
	t.Logf("median area %.4f (theory %.4f), KS %.4f", a[n/2], 0.08+0.5*z, d)
}
