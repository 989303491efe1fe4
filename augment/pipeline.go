package augment

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// Pipeline applies a validated Config. It is safe for concurrent use: each
// call borrows its scratch buffers from a pool, so steady-state View calls
// do not allocate.
type Pipeline struct {
	cfg   Config
	blurK int
	pool  sync.Pool
}

type scratch struct {
	img  Image
	tmp  []float32
	xw   axisWeights
	yw   axisWeights
	kern []float32
	blur blurScratch
}

// New validates cfg and returns its pipeline.
func New(cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg, blurK: BlurKernelSize(cfg.Size)}
	p.pool.New = func() any {
		s := &scratch{}
		s.img = Image{W: cfg.Size, H: cfg.Size, Pix: make([]float32, 3*cfg.Size*cfg.Size)}
		return s
	}
	return p, nil
}

// Size returns the side of the square views.
func (p *Pipeline) Size() int { return p.cfg.Size }

// Config returns the pipeline's configuration.
func (p *Pipeline) Config() Config { return p.cfg }

// BlurKernel returns the Gaussian kernel side used when blurring.
func (p *Pipeline) BlurKernel() int { return p.blurK }

// ViewParams are all the random choices behind one view.
type ViewParams struct {
	Crop      CropParams
	Flip      bool
	Jitter    bool
	JitterP   JitterParams
	Gray      bool
	Blur      bool
	BlurSigma float64
	Solarize  bool
}

// Sample draws the parameters of one view of a w x h source, in pipeline
// order; an operator's parameters are drawn only when it is applied (like
// torchvision's RandomApply).
func (p *Pipeline) Sample(rng *rand.Rand, w, h int) ViewParams {
	c := &p.cfg
	var v ViewParams
	v.Crop = SampleCrop(rng, w, h, [2]float64{c.CropScaleMin, c.CropScaleMax}, [2]float64{c.CropRatioMin, c.CropRatioMax})
	v.Flip = c.FlipP > 0 && rng.Float64() < c.FlipP
	for i := range colorOps {
		op := &colorOps[i]
		if pr := *op.p(c); pr > 0 && (op.on == nil || op.on(c)) && rng.Float64() < pr {
			v = op.draw(rng, c, v)
		}
	}
	return v
}

// colorOp is one random operator applied after the resized crop and flip,
// with probability p: the pipeline samples (Sample), applies (finish),
// validates (Config.Validate: p is key name+"_p") and switches off
// (Config.CropFlipOnly) the operators of colorOps, in its order. A new
// operator is its kernel (ops.go), its Config fields and one entry here.
type colorOp struct {
	name string
	// p is the operator's probability field in c.
	p func(c *Config) *float64
	// on, when not nil, is a further condition for drawing (jitter's s > 0).
	on func(c *Config) bool
	// draw returns v with the operator marked applied and its parameters
	// drawn. (Values, not pointers: a pointer passed to a function value
	// would move every view's parameters to the heap. rng does escape,
	// but every caller's generator lives on the heap already: the
	// loader's workers hold theirs, and data.Transform is an interface.)
	draw func(rng *rand.Rand, c *Config, v ViewParams) ViewParams
	// apply applies it to s.img if v says so.
	apply func(p *Pipeline, s *scratch, v ViewParams)
}

var colorOps = []colorOp{{
	name: "jitter",
	p:    func(c *Config) *float64 { return &c.JitterP },
	on:   func(c *Config) bool { return c.JitterStrength > 0 },
	draw: func(rng *rand.Rand, c *Config, v ViewParams) ViewParams {
		v.Jitter = true
		b, ct, s, hu := c.JitterRanges()
		v.JitterP = SampleJitter(rng, b, ct, s, hu)
		return v
	},
	apply: func(p *Pipeline, s *scratch, v ViewParams) {
		if v.Jitter {
			applyJitter(&s.img, v.JitterP)
		}
	},
}, {
	name: "gray",
	p:    func(c *Config) *float64 { return &c.GrayP },
	draw: func(rng *rand.Rand, c *Config, v ViewParams) ViewParams { v.Gray = true; return v },
	apply: func(p *Pipeline, s *scratch, v ViewParams) {
		if v.Gray {
			Grayscale(&s.img)
		}
	},
}, {
	name: "blur",
	p:    func(c *Config) *float64 { return &c.BlurP },
	draw: func(rng *rand.Rand, c *Config, v ViewParams) ViewParams {
		v.Blur = true
		v.BlurSigma = SampleBlurSigma(rng, c.BlurSigmaMin, c.BlurSigmaMax)
		return v
	},
	apply: func(p *Pipeline, s *scratch, v ViewParams) {
		if !v.Blur {
			return
		}
		size := p.cfg.Size
		img := &s.img
		s.kern = GaussianKernel(s.kern, p.blurK, v.BlurSigma)
		if !v.Gray {
			s.blur.blur(img.Pix, size, size, 3, s.kern)
			return
		}
		// After grayscale the three planes are equal: blur one, copy it.
		s.blur.blur(img.Pix, size, size, 1, s.kern)
		n := size * size
		copy(img.Pix[n:2*n], img.Pix[:n])
		copy(img.Pix[2*n:], img.Pix[:n])
	},
}, {
	name: "solarize",
	p:    func(c *Config) *float64 { return &c.SolarizeP },
	draw: func(rng *rand.Rand, c *Config, v ViewParams) ViewParams { v.Solarize = true; return v },
	apply: func(p *Pipeline, s *scratch, v ViewParams) {
		if v.Solarize {
			Solarize(&s.img, SolarizeThreshold)
		}
	},
}}

// View writes one augmented, normalised view (3*Size*Size floats, CHW) of
// src (an *Image or *Image8) into dst. It is a pure function of src and
// the rng state; an Image8 gives the view of its float conversion, and
// only the pixels under the crop are ever read.
func (p *Pipeline) View(dst []float32, src Source, rng *rand.Rand) error {
	if err := p.check(dst, src); err != nil {
		return err
	}
	w, h := src.dims()
	return p.apply(dst, src, p.Sample(rng, w, h))
}

// Apply writes the view of src defined by v into dst (3*Size*Size floats).
func (p *Pipeline) Apply(dst []float32, src Source, v ViewParams) error {
	if err := p.check(dst, src); err != nil {
		return err
	}
	if err := v.check(src.dims()); err != nil {
		return err
	}
	return p.apply(dst, src, v)
}

// check validates view parameters for a w x h source.
func (v ViewParams) check(w, h int) error {
	if err := v.Crop.check(w, h); err != nil {
		return err
	}
	if v.Blur && !(v.BlurSigma > 0) {
		return fmt.Errorf("augment: blur sigma must be positive, got %v", v.BlurSigma)
	}
	return nil
}

// ApplyImage is Apply without normalisation: it writes the augmented view
// with values in [0,1] into dst (resized to Size x Size). For visualisation.
func (p *Pipeline) ApplyImage(dst *Image, src Source, v ViewParams) error {
	if err := validSource(src); err != nil {
		return err
	}
	if err := v.check(src.dims()); err != nil {
		return err
	}
	s := p.pool.Get().(*scratch)
	defer p.pool.Put(s)
	p.augment(s, src, v)
	p.copyOut(dst, s)
	return nil
}

// check validates a source and a destination of normalised views.
func (p *Pipeline) check(dst []float32, src Source) error {
	if err := validSource(src); err != nil {
		return err
	}
	if n := 3 * p.cfg.Size * p.cfg.Size; len(dst) != n {
		return fmt.Errorf("augment: destination has %d floats, a %dx%d view needs %d", len(dst), p.cfg.Size, p.cfg.Size, n)
	}
	return nil
}

// copyOut copies the view in s.img into dst, resizing it.
func (p *Pipeline) copyOut(dst *Image, s *scratch) {
	dst.W, dst.H = p.cfg.Size, p.cfg.Size
	dst.Pix = grow(dst.Pix, len(s.img.Pix))
	copy(dst.Pix, s.img.Pix)
}

func (p *Pipeline) apply(dst []float32, src Source, v ViewParams) error {
	s := p.pool.Get().(*scratch)
	defer p.pool.Put(s)
	p.augment(s, src, v)
	return Normalize(dst, &s.img, p.cfg.Mean, p.cfg.Std)
}

// augment leaves the unnormalised view in s.img.
func (p *Pipeline) augment(s *scratch, src Source, v ViewParams) {
	size := p.cfg.Size
	c := v.Crop
	// The flip is fused into the resize by reversing the horizontal taps.
	s.xw.compute(c.W, size, 0, size, v.Flip)
	s.yw.compute(c.H, size, 0, size, false)
	s.tmp = src.resample(s.img.Pix, size, size, c.Left, c.Top, c.W, c.H, &s.xw, &s.yw, s.tmp)
	p.finish(s, v)
}

// finish applies the operators after the resized crop to s.img.
func (p *Pipeline) finish(s *scratch, v ViewParams) {
	for i := range colorOps {
		colorOps[i].apply(p, s, v)
	}
}

// Eval writes the deterministic evaluation view of src into dst: the
// shorter side resized to Size (antialiased bilinear, torchvision
// Resize(Size)), a centre Size x Size crop (CenterCrop), then normalisation.
// A Size x Size source is only normalised.
func (p *Pipeline) Eval(dst []float32, src Source) error {
	if err := p.check(dst, src); err != nil {
		return err
	}
	s := p.pool.Get().(*scratch)
	defer p.pool.Put(s)
	p.evalImage(s, src)
	return Normalize(dst, &s.img, p.cfg.Mean, p.cfg.Std)
}

// EvalImage is Eval without normalisation (values in [0,1]).
func (p *Pipeline) EvalImage(dst *Image, src Source) error {
	if err := validSource(src); err != nil {
		return err
	}
	s := p.pool.Get().(*scratch)
	defer p.pool.Put(s)
	p.evalImage(s, src)
	p.copyOut(dst, s)
	return nil
}

func (p *Pipeline) evalImage(s *scratch, src Source) {
	size := p.cfg.Size
	w, h := src.dims()
	nw, nh, left, top := p.evalGeometry(w, h)
	s.xw.compute(w, nw, left, size, false)
	s.yw.compute(h, nh, top, size, false)
	s.tmp = src.resample(s.img.Pix, size, size, 0, 0, w, h, &s.xw, &s.yw, s.tmp)
}

// evalGeometry is the resized size and centre-crop offset of Eval.
func (p *Pipeline) evalGeometry(w, h int) (nw, nh, left, top int) {
	size := p.cfg.Size
	nw, nh = shorterSide(w, h, size)
	left = int(math.RoundToEven(float64(nw-size) / 2))
	top = int(math.RoundToEven(float64(nh-size) / 2))
	return
}

// shorterSide is torchvision's output size for Resize(size) with an int:
// the shorter side becomes size, the longer int(size*long/short).
func shorterSide(w, h, size int) (nw, nh int) {
	if w <= h {
		return size, int(float64(size) * float64(h) / float64(w))
	}
	return int(float64(size) * float64(w) / float64(h)), size
}

// applyJitter applies the colour adjustments in order. Brightness,
// saturation and hue are per-pixel, so runs of them are fused into one pass;
// contrast needs the gray mean of its input, which the pass before it
// accumulates.
func applyJitter(img *Image, p JitterParams) {
	n := img.W * img.H
	r, g, b := img.Pix[:n], img.Pix[n:2*n], img.Pix[2*n:3*n]
	ci := 0
	for i, op := range p.Order {
		if op == OpContrast {
			ci = i
		}
	}
	pre, post := p.Order[:ci], p.Order[ci+1:]
	var sum float64
	for i := range r {
		x, y, z := r[i], g[i], b[i]
		if len(pre) > 0 {
			x, y, z = pixelOps(x, y, z, pre, &p)
			r[i], g[i], b[i] = x, y, z
		}
		sum += float64(gray(x, y, z))
	}
	f := p.Contrast
	m := (1 - f) * float32(sum/float64(n))
	for i := range r {
		x := clamp01(f*r[i] + m)
		y := clamp01(f*g[i] + m)
		z := clamp01(f*b[i] + m)
		if len(post) > 0 {
			x, y, z = pixelOps(x, y, z, post, &p)
		}
		r[i], g[i], b[i] = x, y, z
	}
}

func pixelOps(r, g, b float32, ops []int, p *JitterParams) (float32, float32, float32) {
	for _, op := range ops {
		switch op {
		case OpBrightness:
			f := p.Brightness
			r, g, b = clamp01(f*r), clamp01(f*g), clamp01(f*b)
		case OpSaturation:
			r, g, b = saturate(r, g, b, p.Saturation)
		case OpHue:
			if p.Hue != 0 {
				r, g, b = hueShift(r, g, b, p.Hue)
			}
		}
	}
	return r, g, b
}

// blurScratch holds the buffers of a separable Gaussian blur.
type blurScratch struct {
	row []float32
	tmp []float32
	idx []int32
	off []int // per output row: offsets of the rows under the kernel
}

// reflect maps i into [0, n) by mirror reflection without repeating the
// edge (PyTorch's "reflect" padding), iterating for large pads.
func reflect(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// blurTapEps is the weight below which outer kernel taps are skipped: the
// dropped mass is < K*blurTapEps (~2e-6 for K=23), invisible next to
// float32 rounding, while a small sigma then costs a few taps, not K.
const blurTapEps = 1e-7

// blur convolves the first channels planes of pix (w x h each) with the
// symmetric kernel k along x then y, with reflect padding.
func (s *blurScratch) blur(pix []float32, w, h, channels int, k []float32) {
	for len(k) > 1 && k[0] < blurTapEps {
		k = k[1 : len(k)-1]
	}
	K := len(k)
	pad := K / 2
	s.row = grow(s.row, w+2*pad)
	s.tmp = grow(s.tmp, w*h)
	s.idx = grow(s.idx, h+2*pad)
	for i := range s.idx {
		s.idx[i] = int32(reflect(i-pad, h))
	}
	row, tmp := s.row, s.tmp
	kc := k[pad]
	// Tap offsets: within the padded row, fixed; down the columns, per row.
	s.off = grow(s.off, 4*pad)
	rowA, rowB := s.off[:pad], s.off[pad:2*pad]
	offA, offB := s.off[2*pad:3*pad], s.off[3*pad:4*pad]
	for j := range pad {
		rowA[j], rowB[j] = j, K-1-j
	}
	for c := 0; c < channels; c++ {
		plane := pix[c*w*h : (c+1)*w*h]
		// Horizontal pass into tmp.
		for y := 0; y < h; y++ {
			src := plane[y*w : (y+1)*w]
			copy(row[pad:pad+w], src)
			for j := 1; j <= pad; j++ {
				row[pad-j] = src[reflect(-j, w)]
				row[pad+w-1+j] = src[reflect(w-1+j, w)]
			}
			blurTaps(tmp[y*w:(y+1)*w], row, pad, rowA, rowB, k[:pad], kc)
		}
		// Vertical pass back into plane.
		for y := 0; y < h; y++ {
			for j := 0; j < pad; j++ {
				offA[j] = int(s.idx[y+j]) * w
				offB[j] = int(s.idx[y+K-1-j]) * w
			}
			blurTaps(plane[y*w:(y+1)*w], tmp, y*w, offA, offB, k[:pad], kc)
		}
	}
}

// blurTaps sets out[x] = kc*src[oc+x] + sum_j k[j]*(src[offA[j]+x] +
// src[offB[j]+x]): one output row of a symmetric kernel, whose tap pairs
// lie along the padded row (horizontal pass) or in other rows (vertical
// pass). It accumulates in the same order for every x (so results do not
// depend on the blocking), four outputs at a time held in registers.
func blurTaps(out, src []float32, oc int, offA, offB []int, k []float32, kc float32) {
	w := len(out)
	offB = offB[:len(offA)]
	k = k[:len(offA)]
	x := 0
	for ; x+4 <= w; x += 4 {
		c := src[oc+x : oc+x+4 : oc+x+4]
		s0, s1, s2, s3 := kc*c[0], kc*c[1], kc*c[2], kc*c[3]
		for j, oa := range offA {
			kj := k[j]
			a := src[oa+x : oa+x+4 : oa+x+4]
			ob := offB[j] + x
			b := src[ob : ob+4 : ob+4]
			s0 += kj * (a[0] + b[0])
			s1 += kj * (a[1] + b[1])
			s2 += kj * (a[2] + b[2])
			s3 += kj * (a[3] + b[3])
		}
		o := out[x : x+4 : x+4]
		o[0], o[1], o[2], o[3] = s0, s1, s2, s3
	}
	for ; x < w; x++ {
		s := kc * src[oc+x]
		for j, oa := range offA {
			s += k[j] * (src[oa+x] + src[offB[j]+x])
		}
		out[x] = s
	}
}
