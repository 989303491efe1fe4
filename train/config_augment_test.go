package train

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/nn"
	"github.com/spf13/pflag"
)

// Every augmentation setting, not only the 8 train.Config used to mirror,
// can be set from the augment block; the preset supplies the others, and
// the saved config holds all 15 resolved values.
func TestConfigAugmentBlock(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "run.yaml"), `preset: stl10
augment:
  size: 48
  solarize_p: 0.25
  crop_ratio_min: 0.5
  crop_ratio_max: 2
  blur_sigma_min: 0.3
  blur_sigma_max: 0.9
  mean: [0.5, 0.5, 0.5]
`)
	c := DefaultConfig()
	c.Out = "run"
	if err := c.LoadConfigFile(path); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ac, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := augment.Preset("stl10") // oracle: the preset, then the file's keys
	want.Size, want.SolarizeP, want.CropRatioMin, want.CropRatioMax = 48, 0.25, 0.5, 2
	want.BlurSigmaMin, want.BlurSigmaMax, want.Mean = 0.3, 0.9, [3]float32{0.5, 0.5, 0.5}
	if ac != want {
		t.Errorf("policy:\n got %+v\nwant %+v", ac, want)
	}
	if c.Stem != "cifar" {
		t.Errorf("48 px views: stem %s, want cifar", c.Stem)
	}

	saved := filepath.Join(t.TempDir(), "config.yaml")
	if err := c.Save(saved); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(saved)
	for _, k := range augment.Keys() {
		if !strings.Contains(string(b), "\n  "+k+": ") {
			t.Errorf("config.yaml lacks augment.%s:\n%s", k, b)
		}
	}
	// The saved file no longer depends on the preset's defaults.
	back := DefaultConfig()
	if err := back.LoadConfigFile(saved); err != nil {
		t.Fatal(err)
	}
	back.Preset = "cifar"
	if ac2, err := back.augmentConfig(); err != nil || ac2 != want {
		t.Errorf("saved block over another preset: %+v (%v), want %+v", ac2, err, want)
	}
}

// --augment.KEY flags set any key over the file's block, and leave the
// file's other keys alone.
func TestConfigAugmentFlags(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "run.yaml"), "augment:\n  blur_p: 0.5\n  gray_p: 0.1\n")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fl := BindFlags(fs, DefaultConfig())
	err := fs.Parse([]string{"--config", path, "--augment.gray-p", "0.3", "--augment.solarize-p", "0.2",
		"--augment.std", "0.2,0.3,0.4", "--augment.blur-sigma-max", "1.5", "--augment.size", "16"})
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := c.LoadConfigFile(fl.ConfigFile()); err != nil {
		t.Fatal(err)
	}
	fl.Apply(&c)
	ac, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := augment.Preset("cifar")
	want.BlurP, want.GrayP, want.SolarizeP, want.Std, want.BlurSigmaMax, want.Size = 0.5, 0.3, 0.2, [3]float32{0.2, 0.3, 0.4}, 1.5, 16
	if ac != want {
		t.Errorf("policy:\n got %+v\nwant %+v", ac, want)
	}
	if !fl.Changed("augment.solarize_p") || fl.Changed("augment.flip_p") {
		t.Error("Changed does not follow the augment flags")
	}
	for _, bad := range [][]string{{"--augment.size", "8.5"}, {"--augment.mean", "1,2"}, {"--augment.sharpen-p", "1"}} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		fs.SetOutput(os.Stderr)
		BindFlags(fs, DefaultConfig())
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// A config.yaml (or --config file) written before the augment block: its
// top-level augmentation keys mean the block's; both spellings of one key
// are an error naming both lines; image_size 0 meant the preset's size.
func TestConfigLegacyAugmentKeys(t *testing.T) {
	dir := t.TempDir()
	old := writeFile(t, filepath.Join(dir, "old.yaml"), `preset: imagenet
image_size: 64
crop_scale_min: 0.2
crop_scale_max: 0.9
flip_p: 0.4
jitter_strength: 0.7
jitter_p: 0.6
gray_p: 0.15
blur_p: 0.1
`)
	c := DefaultConfig()
	if err := c.LoadConfigFile(old); err != nil {
		t.Fatal(err)
	}
	ac, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := augment.Preset("imagenet")
	want.Size, want.CropScaleMin, want.CropScaleMax, want.FlipP = 64, 0.2, 0.9, 0.4
	want.JitterStrength, want.JitterP, want.GrayP, want.BlurP = 0.7, 0.6, 0.15, 0.1
	if ac != want {
		t.Errorf("old keys:\n got %+v\nwant %+v", ac, want)
	}

	zero := writeFile(t, filepath.Join(dir, "zero.yaml"), "preset: stl10\nimage_size: 0\n")
	c = DefaultConfig()
	if err := c.LoadConfigFile(zero); err != nil {
		t.Fatal(err)
	}
	if ac, err := c.Resolve(); err != nil || ac.Size != 96 {
		t.Errorf("image_size 0: size %d (%v), want the stl10 preset's 96", ac.Size, err)
	}

	both := writeFile(t, filepath.Join(dir, "both.yaml"), "blur_p: 0.1\naugment:\n  blur_p: 0.2\n")
	c = DefaultConfig()
	err = c.LoadConfigFile(both)
	for _, w := range []string{both, "augment.blur_p", "line 3", "line 1"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("both spellings: %v, want an error containing %q", err, w)
		}
	}

	// The old flat flags are deprecated aliases of --augment.KEY.
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	var msg strings.Builder
	fs.SetOutput(&msg)
	fl := BindFlags(fs, DefaultConfig())
	if err := fs.Parse([]string{"--image-size", "24", "--crop-scale-min", "0.3", "--crop-scale-max", "0.8", "--flip-p", "0",
		"--jitter-strength", "0.25", "--jitter-p", "0.5", "--gray-p", "0", "--blur-p", "0.5"}); err != nil {
		t.Fatal(err)
	}
	c = DefaultConfig()
	fl.Apply(&c)
	if ac, err = c.Resolve(); err != nil {
		t.Fatal(err)
	}
	want, _ = augment.Preset("cifar")
	want.Size, want.CropScaleMin, want.CropScaleMax, want.FlipP = 24, 0.3, 0.8, 0
	want.JitterStrength, want.JitterP, want.GrayP, want.BlurP = 0.25, 0.5, 0, 0.5
	if ac != want {
		t.Errorf("old flags:\n got %+v\nwant %+v", ac, want)
	}
	if !fl.Changed("augment.size") || !fl.Changed("augment.flip_p") || fl.Changed("augment.solarize_p") {
		t.Error("Changed does not follow the old flags")
	}
	if !strings.Contains(msg.String(), "--image-size has been deprecated, use --augment.size") {
		t.Errorf("no deprecation notice: %q", msg.String())
	}
	fs = pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SetOutput(&msg)
	BindFlags(fs, DefaultConfig())
	err = fs.Parse([]string{"--augment.blur-p", "0.1", "--blur-p", "0.2"})
	if err == nil || !strings.Contains(err.Error(), "--augment.blur-p") || !strings.Contains(err.Error(), "--blur-p") {
		t.Errorf("both spellings of a flag: %v, want an error naming both", err)
	}
}

// The width limit is nn's: train accepts exactly the widths nn accepts,
// and the small ones that train used to refuse (below 0.125) build.
func TestConfigWidthLimitIsNN(t *testing.T) {
	for _, w := range []float64{1e-3, 0.1, 0.125, 1, nn.MaxWidth, nn.MaxWidth + 1e-9, 8, 0, -0.5, math.NaN(), math.Inf(1)} {
		c := DefaultConfig()
		c.Out, c.Width = "run", w
		trainErr := c.Validate()
		nnErr := nn.ResNetConfig{Arch: "resnet18", Width: w, Stem: "cifar"}.Validate()
		if w > 0 && w < 0.125 {
			_, nnErr = nn.NewResNet(nn.ResNetConfig{Arch: "resnet18", Width: w, Stem: "cifar"})
		}
		if (trainErr == nil) != (nnErr == nil) {
			t.Errorf("width %v: train says %v, nn says %v", w, trainErr, nnErr)
		}
		if trainErr != nil && !strings.Contains(trainErr.Error(), "width") {
			t.Errorf("width %v: error %v does not name width", w, trainErr)
		}
	}
}

// Names come from their packages' registries.
func TestConfigNamesFromOwners(t *testing.T) {
	for _, a := range nn.ArchNames() {
		c := DefaultConfig()
		c.Out, c.Arch = "run", a
		if err := c.Validate(); err != nil {
			t.Errorf("arch %s: %v", a, err)
		}
	}
	for _, p := range augment.PresetNames() {
		c := DefaultConfig()
		c.Out, c.Preset = "run", p
		if err := c.Validate(); err != nil {
			t.Errorf("preset %s: %v", p, err)
		}
	}
	c := DefaultConfig()
	c.Out = "run"
	mustSet(t, &c.Augment, "solarize_p", 1.5)
	mustSet(t, &c.Augment, "crop_ratio_min", 0)
	err := c.Validate()
	for _, w := range []string{"solarize_p", "crop_ratio_min"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("%v does not name %s", err, w)
		}
	}
}

func TestConfigUnknownAugmentKey(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "run.yaml"), "lr: 0.5\naugment:\n  flip_p: 0.5\n  blur_radius: 3\n")
	c := DefaultConfig()
	err := c.LoadConfigFile(path)
	for _, w := range []string{path, "line 4", "augment.blur_radius"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("%v, want an error containing %q", err, w)
		}
	}
}
