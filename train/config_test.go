package train

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/augment"
	"github.com/spf13/pflag"
)

func writeFile(t *testing.T, path, s string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustSet gives key of an augment block the value v, written as a flag
// would be.
func mustSet(t *testing.T, o *augment.Overrides, key string, v any) {
	t.Helper()
	if err := o.Set(key, fmt.Sprint(v)); err != nil {
		t.Fatal(err)
	}
}

func TestConfigUnknownKeyNamesFileAndKey(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "run.yaml"), "lr: 0.5\nlearning_rate: 0.1\n")
	cfg := DefaultConfig()
	err := cfg.LoadConfigFile(path)
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	for _, want := range []string{path, "learning_rate", "line 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestConfigBadValueType(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "run.yaml"), "batch: lots\n")
	cfg := DefaultConfig()
	err := cfg.LoadConfigFile(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "lots") {
		t.Fatalf("got %v, want an error naming the file and the value", err)
	}
}

func TestConfigFlagsOverrideFile(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "run.yaml"),
		"lr: 0.5\nbatch: 64\noptimizer: sgd\nweight_decay: 0.0005\njitter_strength: 0.25\n")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fl := BindFlags(fs, DefaultConfig())
	if err := fs.Parse([]string{"--config", path, "--lr", "0.1", "--epochs", "7", "--blur-p", "0.3", "--nesterov"}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := cfg.LoadConfigFile(fl.ConfigFile()); err != nil {
		t.Fatal(err)
	}
	fl.Apply(&cfg)
	if cfg.LR != 0.1 || cfg.Epochs != 7 || !cfg.Nesterov {
		t.Errorf("explicit flags not applied: lr %v epochs %v nesterov %v", cfg.LR, cfg.Epochs, cfg.Nesterov)
	}
	if cfg.Batch != 64 || cfg.Optimizer != "sgd" || cfg.WeightDecay != 0.0005 {
		t.Errorf("file values overridden by unset flags: batch %v optimizer %v wd %v", cfg.Batch, cfg.Optimizer, cfg.WeightDecay)
	}
	// The file's jitter_strength and the flag --blur-p are the old flat
	// spellings of augment.jitter_strength and --augment.blur-p.
	if j, ok := cfg.Augment.Get("jitter_strength"); !ok || j != 0.25 {
		t.Errorf("augmentation overrides: jitter %v", j)
	}
	if b, ok := cfg.Augment.Get("blur_p"); !ok || b != 0.3 {
		t.Errorf("augmentation overrides: blur %v", b)
	}
	if v, ok := cfg.Augment.Get("crop_scale_min"); ok {
		t.Errorf("unset override became %v", v)
	}
}

// Every YAML key has a flag of the same name, and the flag names the
// acceptance checks use exist.
func TestConfigEveryKeyIsAFlag(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs, DefaultConfig())
	ty := reflect.TypeOf(Config{})
	for i := 0; i < ty.NumField(); i++ {
		k := yamlKey(ty.Field(i))
		if k == "" {
			continue
		}
		if ty.Field(i).Tag.Get("flag") == "-" { // recorded facts such as world_size
			if fs.Lookup(strings.ReplaceAll(k, "_", "-")) != nil {
				t.Errorf("recorded key %s has a flag", k)
			}
			continue
		}
		keys := []string{k}
		if ty.Field(i).Type == reflect.TypeOf(augment.Overrides{}) { // a block: its keys are block.key
			keys = keys[:0]
			for _, ak := range augment.Keys() {
				keys = append(keys, k+"."+ak)
			}
		}
		for _, k := range keys {
			if fs.Lookup(strings.ReplaceAll(k, "_", "-")) == nil {
				t.Errorf("YAML key %s has no flag", k)
			}
		}
	}
	for _, f := range strings.Fields(`data out config arch width stem head batch epochs optimizer lr lr-scaling
		weight-decay momentum warmup-epochs temperature preset seed threads knn-every checkpoint-every resume
		head-hidden head-out nesterov workers knn-train knn-test knn-k knn-tau keep-checkpoints skip-bad log-every bn sync-check-every`) {
		if fs.Lookup(f) == nil {
			t.Errorf("flag --%s missing", f)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Out = "x"
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	neg := -0.5
	cases := []struct {
		key string
		mut func(c *Config)
	}{
		{"out", func(c *Config) { c.Out = "" }},
		{"arch", func(c *Config) { c.Arch = "resnet101" }},
		{"width", func(c *Config) { c.Width = 8 }},
		{"stem", func(c *Config) { c.Stem = "tiny" }},
		{"head", func(c *Config) { c.Head = "v3" }},
		{"batch", func(c *Config) { c.Batch = 1 }},
		{"epochs", func(c *Config) { c.Epochs = 0 }},
		{"optimizer", func(c *Config) { c.Optimizer = "rmsprop" }},
		{"lr", func(c *Config) { c.LR = 0 }},
		{"lr_scaling", func(c *Config) { c.LRScaling = "log" }},
		{"weight_decay", func(c *Config) { c.WeightDecay = -1 }},
		{"momentum", func(c *Config) { c.Momentum = 1 }},
		{"nesterov", func(c *Config) { c.Optimizer, c.Nesterov = "adam", true }},
		{"warmup_epochs", func(c *Config) { c.WarmupEpochs = 200 }},
		{"temperature", func(c *Config) { c.Temperature = 0.001 }},
		{"preset", func(c *Config) { c.Preset = "mnist" }},
		{"gray_p", func(c *Config) { mustSet(t, &c.Augment, "gray_p", neg) }},
		{"knn_k", func(c *Config) { c.KNNK = 0 }},
		{"knn_tau", func(c *Config) { c.KNNTau = 0 }},
		{"keep_checkpoints", func(c *Config) { c.KeepCheckpoints = 0 }},
		{"log_every", func(c *Config) { c.LogEvery = 0 }},
		{"method", func(c *Config) { c.Method = "byol" }},
	}
	for _, tc := range cases {
		c := ok
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: got %v, want an error naming %s", tc.key, err, tc.key)
		}
	}
}

func TestConfigResolve(t *testing.T) {
	c := DefaultConfig()
	if _, err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if size, _ := c.Augment.Get("size"); c.Stem != "cifar" || c.Temperature != 0.5 || size != 32 {
		t.Errorf("cifar preset: stem %s tau %v size %v, want cifar 0.5 32", c.Stem, c.Temperature, size)
	}
	if c.WarmupEpochs != 10 {
		t.Errorf("100 epochs: %v warm-up epochs, want the paper's 10", c.WarmupEpochs)
	}
	short := DefaultConfig()
	short.Epochs = 5
	short.Resolve()
	if short.WarmupEpochs != 0.5 {
		t.Errorf("5 epochs: %v warm-up epochs, want 0.5", short.WarmupEpochs)
	}
	j, jok := c.Augment.Get("jitter_strength")
	b, bok := c.Augment.Get("blur_p")
	if !jok || j != 0.5 || !bok || b != 0.0 {
		t.Errorf("cifar preset overrides not filled from the preset: jitter %v blur %v", j, b)
	}

	c = DefaultConfig()
	c.Preset = "stl10"
	ac, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.Stem != "imagenet" || c.Temperature != 0.1 || ac.Size != 96 {
		t.Errorf("stl10 preset: stem %s tau %v size %d, want imagenet 0.1 96", c.Stem, c.Temperature, ac.Size)
	}

	c = DefaultConfig()
	c.Preset, c.Stem = "imagenet", ""
	mustSet(t, &c.Augment, "size", 64)
	mustSet(t, &c.Augment, "crop_scale_min", 0.2)
	ac, err = c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.Stem != "cifar" || ac.Size != 64 || ac.CropScaleMin != 0.2 || ac.BlurP != 0.5 {
		t.Errorf("imagenet preset at 64 px: stem %s size %d crop %v blur %v", c.Stem, ac.Size, ac.CropScaleMin, ac.BlurP)
	}
}

func TestConfigSaveLoadRoundTrip(t *testing.T) {
	c := DefaultConfig()
	c.Out, c.Optimizer, c.Width = "run", "adamw", 0.5
	c.Deterministic = true // recorded in config.yaml
	if _, err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := back.LoadConfigFile(path); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, c)
	}
	if back.Hash() != c.Hash() {
		t.Error("hash changed in the round trip")
	}
	d := back
	d.Threads, d.KNNEvery, d.Out, d.Deterministic = 7, 3, "elsewhere", !c.Deterministic
	if d.Hash() != c.Hash() {
		t.Error("run-management keys changed the trajectory hash")
	}
	d.LR = 0.7
	if d.Hash() == c.Hash() {
		t.Error("lr did not change the trajectory hash")
	}
	if diff := diffKeys(c, d); len(diff) != 1 || !strings.HasPrefix(diff[0], "lr ") {
		t.Errorf("diffKeys = %v, want lr only", diff)
	}
}

// TestConfigMethod: the method key comes from the registry (YAML and flag),
// defaults to simclr when an older config has no such key, and an unknown
// name is refused with the registered ones.
func TestConfigMethod(t *testing.T) {
	dir := t.TempDir()
	old := DefaultConfig()
	if err := old.LoadConfigFile(writeFile(t, filepath.Join(dir, "old.yaml"), "lr: 0.5\n")); err != nil || old.Method != "simclr" {
		t.Errorf("config without method: %q, %v", old.Method, err)
	}
	c := DefaultConfig()
	if err := c.LoadConfigFile(writeFile(t, filepath.Join(dir, "sc.yaml"), "method: supcon\n")); err != nil || c.Method != "supcon" {
		t.Errorf("method: supcon in YAML: %q, %v", c.Method, err)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fl := BindFlags(fs, DefaultConfig())
	if err := fs.Parse([]string{"--method", "supcon"}); err != nil {
		t.Fatal(err)
	}
	c = DefaultConfig()
	fl.Apply(&c)
	if c.Method != "supcon" {
		t.Errorf("--method supcon gave %q", c.Method)
	}
	c.Out, c.Method = "x", "byol"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `method "byol": want one of simclr|supcon`) {
		t.Errorf("unknown method: %v", err)
	}
}
