package augment

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Config describes the SimCLR augmentation policy (paper appendix A):
// random resized crop, horizontal flip, colour jitter (random order),
// random grayscale, Gaussian blur, optional solarisation, then
// per-channel normalisation. Every field can be overridden from YAML (the
// `augment:` block of a training config) and from flags (--augment.KEY);
// see Overrides. The yaml tag is the key, the help tag the flag's help.
type Config struct {
	// Size is the side of the square output view in pixels.
	Size int `yaml:"size" help:"side of the augmented views in pixels"`
	// CropScaleMin/Max bound the crop area as a fraction of the source area.
	CropScaleMin float64 `yaml:"crop_scale_min" help:"random resized crop: smallest area fraction"`
	CropScaleMax float64 `yaml:"crop_scale_max" help:"random resized crop: largest area fraction"`
	// CropRatioMin/Max bound the crop aspect ratio w/h (sampled log-uniformly).
	CropRatioMin float64 `yaml:"crop_ratio_min" help:"random resized crop: smallest aspect ratio w/h"`
	CropRatioMax float64 `yaml:"crop_ratio_max" help:"random resized crop: largest aspect ratio w/h"`
	// FlipP is the horizontal flip probability.
	FlipP float64 `yaml:"flip_p" help:"horizontal flip probability"`
	// JitterStrength is the paper's s: brightness = contrast = saturation =
	// 0.8s, hue = 0.2s. 0 disables colour jitter.
	JitterStrength float64 `yaml:"jitter_strength" help:"colour jitter strength s (brightness/contrast/saturation 0.8s, hue 0.2s)"`
	// JitterP is the probability of applying colour jitter.
	JitterP float64 `yaml:"jitter_p" help:"colour jitter probability"`
	// GrayP is the probability of converting to grayscale.
	GrayP float64 `yaml:"gray_p" help:"random grayscale probability"`
	// BlurP is the probability of Gaussian blur (0 = off). The kernel side
	// is int(0.1*Size) made odd.
	BlurP float64 `yaml:"blur_p" help:"Gaussian blur probability (0 = off)"`
	// BlurSigmaMin/Max bound the blur standard deviation in pixels.
	BlurSigmaMin float64 `yaml:"blur_sigma_min" help:"Gaussian blur: smallest sigma in pixels"`
	BlurSigmaMax float64 `yaml:"blur_sigma_max" help:"Gaussian blur: largest sigma in pixels"`
	// SolarizeP is the probability of solarisation (threshold 0.5).
	SolarizeP float64 `yaml:"solarize_p" help:"solarisation probability (threshold 0.5)"`
	// Mean and Std are the per-channel normalisation constants.
	Mean [3]float32 `yaml:"mean" help:"per-channel normalisation mean, R,G,B"`
	Std  [3]float32 `yaml:"std" help:"per-channel normalisation standard deviation, R,G,B"`
}

// SolarizeThreshold is the threshold used by the pipeline's solarisation
// (BYOL / SimCLR v2 use 0.5 on [0,1] images).
const SolarizeThreshold = 0.5

// Normalisation constants of common datasets.
var (
	CIFARMean    = [3]float32{0.4914, 0.4822, 0.4465}
	CIFARStd     = [3]float32{0.2470, 0.2435, 0.2616}
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
	STL10Mean    = [3]float32{0.4467, 0.4398, 0.4066}
	STL10Std     = [3]float32{0.2603, 0.2566, 0.2713}
)

func baseConfig() Config {
	return Config{
		CropScaleMin: 0.08, CropScaleMax: 1,
		CropRatioMin: 3.0 / 4, CropRatioMax: 4.0 / 3,
		FlipP:          0.5,
		JitterStrength: 1,
		JitterP:        0.8,
		GrayP:          0.2,
		BlurSigmaMin:   0.1, BlurSigmaMax: 2.0,
	}
}

var presets = map[string]func() Config{
	// CIFAR recipe of the paper (appendix B.9): s=0.5, no blur.
	"cifar": func() Config {
		c := baseConfig()
		c.Size, c.JitterStrength = 32, 0.5
		c.Mean, c.Std = CIFARMean, CIFARStd
		return c
	},
	"imagenet": func() Config {
		c := baseConfig()
		c.Size, c.BlurP = 224, 0.5
		c.Mean, c.Std = ImageNetMean, ImageNetStd
		return c
	},
	"stl10": func() Config {
		c := baseConfig()
		c.Size, c.BlurP = 96, 0.5
		c.Mean, c.Std = STL10Mean, STL10Std
		return c
	},
}

// PresetNames lists the names accepted by Preset, sorted.
func PresetNames() []string { return slices.Sorted(maps.Keys(presets)) }

// Preset returns a named configuration: "cifar" (32 px, s=0.5, no blur),
// "imagenet" (224 px, s=1, blur p=0.5) or "stl10" (96 px, s=1, blur p=0.5),
// each with its dataset's normalisation constants.
func Preset(name string) (Config, error) {
	f, ok := presets[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Config{}, fmt.Errorf("augment: unknown preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	return f(), nil
}

// BlurKernelSize returns the Gaussian kernel side used for a view of the
// given size: int(0.1*size), incremented if even (the paper's 10% rule).
func BlurKernelSize(size int) int {
	k := int(0.1 * float64(size))
	if k%2 == 0 {
		k++
	}
	return k
}

// JitterRanges returns the torchvision ColorJitter arguments (brightness,
// contrast, saturation, hue) for strength s: 0.8s, 0.8s, 0.8s, 0.2s.
func (c Config) JitterRanges() (b, ct, s, h float64) {
	return 0.8 * c.JitterStrength, 0.8 * c.JitterStrength, 0.8 * c.JitterStrength, 0.2 * c.JitterStrength
}

// CropFlipOnly returns c with every operator after the crop and flip
// switched off (probability 0): the views of paper appendix B.5/B.6.
func (c Config) CropFlipOnly() Config {
	for i := range colorOps {
		*colorOps[i].p(&c) = 0
	}
	return c
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	finite := func(name string, v float64) bool {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad("%s must be finite, got %v", name, v)
			return false
		}
		return true
	}
	prob := func(name string, v float64) {
		if finite(name, v) && (v < 0 || v > 1) {
			bad("%s must be a probability in [0,1], got %v", name, v)
		}
	}
	if c.Size < 1 || c.Size > 1<<14 {
		bad("size must be in [1, 16384], got %d", c.Size)
	}
	if finite("crop_scale_min", c.CropScaleMin) && finite("crop_scale_max", c.CropScaleMax) {
		if c.CropScaleMin <= 0 || c.CropScaleMax < c.CropScaleMin {
			bad("crop scale must satisfy 0 < crop_scale_min <= crop_scale_max, got (%v, %v)", c.CropScaleMin, c.CropScaleMax)
		}
	}
	if finite("crop_ratio_min", c.CropRatioMin) && finite("crop_ratio_max", c.CropRatioMax) {
		if c.CropRatioMin <= 0 || c.CropRatioMax < c.CropRatioMin {
			bad("crop ratio must satisfy 0 < crop_ratio_min <= crop_ratio_max, got (%v, %v)", c.CropRatioMin, c.CropRatioMax)
		}
	}
	prob("flip_p", c.FlipP)
	for i := range colorOps {
		prob(colorOps[i].name+"_p", *colorOps[i].p(&c))
	}
	if finite("jitter_strength", c.JitterStrength) {
		// hue = 0.2s must stay within torchvision's [0, 0.5].
		if c.JitterStrength < 0 || c.JitterStrength > 2.5 {
			bad("jitter_strength must be in [0, 2.5] (hue = 0.2*s <= 0.5), got %v", c.JitterStrength)
		}
	}
	if c.BlurP > 0 && finite("blur_sigma_min", c.BlurSigmaMin) && finite("blur_sigma_max", c.BlurSigmaMax) {
		if c.BlurSigmaMin <= 0 || c.BlurSigmaMax < c.BlurSigmaMin {
			bad("blur sigma must satisfy 0 < blur_sigma_min <= blur_sigma_max, got (%v, %v)", c.BlurSigmaMin, c.BlurSigmaMax)
		}
	}
	for i := 0; i < 3; i++ {
		m, s := float64(c.Mean[i]), float64(c.Std[i])
		finite(fmt.Sprintf("mean[%d]", i), m)
		if finite(fmt.Sprintf("std[%d]", i), s) && s <= 0 {
			bad("std[%d] must be > 0, got %v (is std unset?)", i, s)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("augment: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
