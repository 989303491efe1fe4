package augment

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Each operator is split into parameter sampling (Sample*, consuming the
// caller's rng) and a pure application on an Image, so that the goldens can
// check the application against torchvision with fixed parameters and the
// statistical tests can check the samplers on their own.

// CropParams is a crop rectangle in source pixels (torchvision's i, j, h, w).
type CropParams struct {
	Top, Left, H, W int
}

func (c CropParams) String() string {
	return fmt.Sprintf("crop(top=%d,left=%d,h=%d,w=%d)", c.Top, c.Left, c.H, c.W)
}

func (c CropParams) check(w, h int) error {
	if c.W < 1 || c.H < 1 || c.Left < 0 || c.Top < 0 || c.Left+c.W > w || c.Top+c.H > h {
		return fmt.Errorf("augment: %v outside the %dx%d image", c, w, h)
	}
	return nil
}

// SampleCrop draws a RandomResizedCrop rectangle for a w x h image with
// torchvision's RandomResizedCrop.get_params: up to 10 tries of an area
// fraction ~U(scale) and a log-uniform aspect ratio in ratio, rounded half to
// even; a try that fits is placed uniformly. Otherwise it falls back to a
// centre crop with the aspect ratio clamped to ratio. w and h must be >= 1.
func SampleCrop(rng *rand.Rand, w, h int, scale, ratio [2]float64) CropParams {
	area := float64(w) * float64(h)
	lr0, lr1 := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * uniform(rng, scale[0], scale[1])
		ar := math.Exp(uniform(rng, lr0, lr1))
		cw := int(math.RoundToEven(math.Sqrt(target * ar)))
		ch := int(math.RoundToEven(math.Sqrt(target / ar)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			top := rng.IntN(h - ch + 1)
			left := rng.IntN(w - cw + 1)
			return CropParams{Top: top, Left: left, H: ch, W: cw}
		}
	}
	return centerFallback(w, h, ratio)
}

// centerFallback is torchvision's fallback: the largest centred crop whose
// aspect ratio lies in ratio.
func centerFallback(w, h int, ratio [2]float64) CropParams {
	inRatio := float64(w) / float64(h)
	cw, ch := w, h
	switch {
	case inRatio < ratio[0]:
		ch = int(math.RoundToEven(float64(cw) / ratio[0]))
	case inRatio > ratio[1]:
		cw = int(math.RoundToEven(float64(ch) * ratio[1]))
	}
	cw, ch = max(cw, 1), max(ch, 1)
	return CropParams{Top: (h - ch) / 2, Left: (w - cw) / 2, H: ch, W: cw}
}

func uniform(rng *rand.Rand, lo, hi float64) float64 {
	return lo + (hi-lo)*rng.Float64()
}

// ResizedCrop crops c out of src (an Image or Image8) and resizes it to size x size into dst
// (reallocating dst.Pix if too small) with antialiased bilinear
// interpolation (see resize.go).
func ResizedCrop(dst *Image, src Source, c CropParams, size int) error {
	if err := validSource(src); err != nil {
		return err
	}
	if err := c.check(src.dims()); err != nil {
		return err
	}
	if size < 1 {
		return fmt.Errorf("augment: resized crop size must be >= 1, got %d", size)
	}
	var xw, yw axisWeights
	xw.compute(c.W, size, 0, size, false)
	yw.compute(c.H, size, 0, size, false)
	dst.W, dst.H, dst.Pix = size, size, grow(dst.Pix, 3*size*size)
	src.resample(dst.Pix, size, size, c.Left, c.Top, c.W, c.H, &xw, &yw, nil)
	return nil
}

// HFlip mirrors img left-right in place.
func HFlip(img *Image) {
	w := img.W
	for r := 0; r < 3*img.H; r++ {
		row := img.Pix[r*w : (r+1)*w]
		for i, j := 0, w-1; i < j; i, j = i+1, j-1 {
			row[i], row[j] = row[j], row[i]
		}
	}
}

// Colour jitter operator indices, in torchvision's order.
const (
	OpBrightness = iota
	OpContrast
	OpSaturation
	OpHue
)

// JitterParams are the sampled ColorJitter factors and the order in which
// the four adjustments are applied. A factor of 1 (hue 0) is the identity.
type JitterParams struct {
	Order                            [4]int
	Brightness, Contrast, Saturation float32
	Hue                              float32
}

// SampleJitter draws ColorJitter parameters like torchvision's
// ColorJitter.get_params: a uniformly random order of the four operators,
// then brightness ~U(max(0,1-b), 1+b), contrast and saturation likewise and
// hue ~U(-h, h). A zero strength leaves that operator at its identity
// without consuming randomness.
func SampleJitter(rng *rand.Rand, brightness, contrast, saturation, hue float64) JitterParams {
	p := JitterParams{Order: [4]int{0, 1, 2, 3}, Brightness: 1, Contrast: 1, Saturation: 1}
	// Fisher-Yates without allocating (rng.Perm allocates).
	for i := 3; i > 0; i-- {
		j := rng.IntN(i + 1)
		p.Order[i], p.Order[j] = p.Order[j], p.Order[i]
	}
	if brightness > 0 {
		p.Brightness = float32(uniform(rng, max(0, 1-brightness), 1+brightness))
	}
	if contrast > 0 {
		p.Contrast = float32(uniform(rng, max(0, 1-contrast), 1+contrast))
	}
	if saturation > 0 {
		p.Saturation = float32(uniform(rng, max(0, 1-saturation), 1+saturation))
	}
	if hue > 0 {
		p.Hue = float32(uniform(rng, -hue, hue))
	}
	return p
}

// Grayscale weights of torchvision's rgb_to_grayscale on tensors (ITU-R
// 601-2 luma as written in TensorFlow; note 0.2989, not 0.299).
const (
	grayR = 0.2989
	grayG = 0.587
	grayB = 0.114
)

func gray(r, g, b float32) float32 { return grayR*r + grayG*g + grayB*b }

func clamp01(x float32) float32 {
	if x < 0 {
		return 0
	}
	if x > 1 {
		return 1
	}
	return x
}

// AdjustBrightness multiplies every value by f and clamps to [0,1].
func AdjustBrightness(img *Image, f float32) {
	for i, v := range img.Pix {
		img.Pix[i] = clamp01(f * v)
	}
}

// GrayMean returns the mean of the grayscale image, the anchor of
// AdjustContrast.
func GrayMean(img *Image) float32 {
	n := img.W * img.H
	r, g, b := img.Pix[:n], img.Pix[n:2*n], img.Pix[2*n:3*n]
	var sum float64
	for i := range r {
		sum += float64(gray(r[i], g[i], b[i]))
	}
	return float32(sum / float64(n))
}

// AdjustContrast blends img with the mean of its grayscale version:
// clamp(f*x + (1-f)*mean).
func AdjustContrast(img *Image, f float32) {
	m := (1 - f) * GrayMean(img)
	for i, v := range img.Pix {
		img.Pix[i] = clamp01(f*v + m)
	}
}

// AdjustSaturation blends each pixel with its gray value:
// clamp(f*x + (1-f)*gray).
func AdjustSaturation(img *Image, f float32) {
	n := img.W * img.H
	r, g, b := img.Pix[:n], img.Pix[n:2*n], img.Pix[2*n:3*n]
	for i := range r {
		r[i], g[i], b[i] = saturate(r[i], g[i], b[i], f)
	}
}

func saturate(r, g, b, f float32) (float32, float32, float32) {
	m := (1 - f) * gray(r, g, b)
	return clamp01(f*r + m), clamp01(f*g + m), clamp01(f*b + m)
}

// AdjustHue rotates the hue by h (in turns, |h| <= 0.5) through
// torchvision's _rgb2hsv / _hsv2rgb.
func AdjustHue(img *Image, h float32) {
	n := img.W * img.H
	r, g, b := img.Pix[:n], img.Pix[n:2*n], img.Pix[2*n:3*n]
	for i := range r {
		r[i], g[i], b[i] = hueShift(r[i], g[i], b[i], h)
	}
}

// hueShift is _rgb2hsv, (h+shift) mod 1, _hsv2rgb for one pixel. It
// follows torchvision's float32 formulas, rearranged to avoid divisions and
// unpredictable branches (the per-pixel sector switch of _hsv2rgb becomes the
// equivalent closed form v - v*s*clamp(min(k, 4-k), 0, 1) with
// k = (n + 6h) mod 6 and n = 5, 3, 1 for r, g, b); results agree to float32
// rounding.
func hueShift(r, g, b, shift float32) (float32, float32, float32) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	cr := maxc - minc
	if cr == 0 {
		// Gray: s = 0 and hue is irrelevant; hsv2rgb returns v everywhere.
		return maxc, maxc, maxc
	}
	inv := 1 / cr
	// Hue in sixths of a turn, in [-1, 5): the sector of the maximum channel.
	// (h/6 + 1) mod 1 in _rgb2hsv only maps it to [0, 1); the final mod 6
	// below absorbs that.
	h := (g - b) * inv
	if maxc != r {
		h = 2 + (b-r)*inv
		if maxc != g {
			h = 4 + (r-g)*inv
		}
	}
	// h6 = 6*((h/6 + 1 + shift) mod 1) in [0, 6); |6*shift| <= 3.
	h6 := h + 6*shift // in (-4, 8)
	if h6 < 0 {
		h6 += 6
	}
	if h6 >= 6 {
		h6 -= 6
	}
	vs := cr // v*s = maxc * (cr/maxc)
	return maxc - vs*sector(h6+5), maxc - vs*sector(h6+3), maxc - vs*sector(h6+1)
}

// sector returns clamp(min(k, 4-k), 0, 1) for k = x mod 6, x in [0, 12).
func sector(x float32) float32 {
	if x >= 6 {
		x -= 6
	}
	y := 4 - x
	if x < y {
		y = x
	}
	if y > 1 {
		return 1
	}
	if y < 0 {
		return 0
	}
	return y
}

// ApplyJitter applies the four adjustments of p in p.Order, one pass per
// operator. (The pipeline uses a fused equivalent.)
func ApplyJitter(img *Image, p JitterParams) {
	for _, op := range p.Order {
		switch op {
		case OpBrightness:
			AdjustBrightness(img, p.Brightness)
		case OpContrast:
			AdjustContrast(img, p.Contrast)
		case OpSaturation:
			AdjustSaturation(img, p.Saturation)
		case OpHue:
			AdjustHue(img, p.Hue)
		}
	}
}

// Grayscale replaces each channel by the gray value 0.2989R+0.587G+0.114B
// (torchvision rgb_to_grayscale with 3 output channels).
func Grayscale(img *Image) {
	n := img.W * img.H
	r, g, b := img.Pix[:n], img.Pix[n:2*n], img.Pix[2*n:3*n]
	for i := range r {
		y := gray(r[i], g[i], b[i])
		r[i], g[i], b[i] = y, y, y
	}
}

// GaussianKernel returns torchvision's normalised 1-D Gaussian kernel of the
// given odd size and sigma (computed in float32 like _get_gaussian_kernel1d).
func GaussianKernel(dst []float32, size int, sigma float64) []float32 {
	dst = grow(dst, size)
	half := float32(size-1) * 0.5
	s := float32(sigma)
	var sum float32
	for i := range dst {
		// torch.linspace(-half, half, size)
		x := -half + float32(i)*(2*half/float32(max(size-1, 1)))
		if size == 1 {
			x = 0
		}
		d := x / s
		v := float32(math.Exp(float64(-0.5 * d * d)))
		dst[i] = v
		sum += v
	}
	for i := range dst {
		dst[i] /= sum
	}
	return dst
}

// SampleBlurSigma draws the blur standard deviation ~U(lo, hi).
func SampleBlurSigma(rng *rand.Rand, lo, hi float64) float64 { return uniform(rng, lo, hi) }

// GaussianBlur blurs img in place with a size x size Gaussian of standard
// deviation sigma and reflect padding (torchvision gaussian_blur on tensors).
// size must be odd and positive.
func GaussianBlur(img *Image, size int, sigma float64) error {
	if size < 1 || size%2 == 0 {
		return fmt.Errorf("augment: gaussian blur kernel size must be odd and positive, got %d", size)
	}
	if !(sigma > 0) || math.IsInf(sigma, 0) {
		return fmt.Errorf("augment: gaussian blur sigma must be positive and finite, got %v", sigma)
	}
	var s blurScratch
	s.blur(img.Pix, img.W, img.H, 3, GaussianKernel(nil, size, sigma))
	return nil
}

// Solarize inverts every value >= threshold (x -> 1-x).
func Solarize(img *Image, threshold float32) {
	for i, v := range img.Pix {
		if v >= threshold {
			img.Pix[i] = 1 - v
		}
	}
}

// Normalize writes (x - mean[c]) / std[c] for every value of img into dst
// (len 3*W*H, CHW).
func Normalize(dst []float32, img *Image, mean, std [3]float32) error {
	n := img.W * img.H
	if len(dst) != 3*n || len(img.Pix) != 3*n {
		return fmt.Errorf("augment: normalize: dst has %d values, image %dx%d needs %d", len(dst), img.W, img.H, 3*n)
	}
	for c := 0; c < 3; c++ {
		m, inv := mean[c], 1/std[c]
		d, s := dst[c*n:(c+1)*n], img.Pix[c*n:(c+1)*n]
		for i, v := range s {
			d[i] = (v - m) * inv
		}
	}
	return nil
}
