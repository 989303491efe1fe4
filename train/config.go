package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/simclr-go/simclr/data"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Config holds every hyperparameter of a pretraining run. Each field is a
// YAML key (snake_case, the `yaml` tag) and a command-line flag of the same
// name with dashes (weight_decay -> --weight-decay); see BindFlags.
//
// Zero values of a few fields mean "choose for me" and are filled in by
// Resolve: Stem ("" -> cifar for images of at most 64 px, else imagenet),
// Temperature (0 -> 0.5 for the cifar preset, 0.1 otherwise), WarmupEpochs
// (-1 -> 10, the paper's, but at most a tenth of the epochs), HeadHidden
// (0 -> the encoder's output dimension) and the augmentation overrides (nil
// -> the preset's value). The config saved in RUNDIR/config.yaml is the
// resolved one, so a run is fully described by it.
type Config struct {
	Data   string `yaml:"data" help:"training images: a data spec KIND:PATH[@SPLIT] (cifar10:, cifar100:, stl10:, folder:, fashion-mnist:, mnist:; a PATH that exists is never split at @); default: the embedded Fashion-MNIST"`
	Out    string `yaml:"out" help:"run directory (config, checkpoints, metrics, plots)"`
	Config string `yaml:"-" help:"YAML file with any of these keys; flags set explicitly override it"`

	Arch       string  `yaml:"arch" help:"encoder: resnet18|resnet34|resnet50"`
	Width      float64 `yaml:"width" help:"width multiplier of the encoder (0.125 ... 4)"`
	Stem       string  `yaml:"stem" help:"cifar (3x3/1, no max-pool) | imagenet (7x7/2 + max-pool); default: cifar for images <= 64 px"`
	ZeroInit   bool    `yaml:"zero_init_residual" help:"zero-initialise the last BN gamma of each residual block"`
	Head       string  `yaml:"head" help:"projection head: v1 (2 layers) | v2 (3 layers, BN)"`
	HeadHidden int     `yaml:"head_hidden" help:"hidden width of the head (0 = encoder output dim)"`
	HeadOut    int     `yaml:"head_out" help:"output dim of the head (z)"`

	Batch        int     `yaml:"batch" help:"source images per step (each gives 2 views)"`
	Epochs       int     `yaml:"epochs" help:"passes over the training set"`
	Optimizer    string  `yaml:"optimizer" help:"lars|sgd|adam|adamw"`
	LR           float64 `yaml:"lr" help:"base learning rate, before scaling"`
	LRScaling    string  `yaml:"lr_scaling" help:"linear (lr*B/256) | sqrt (lr*sqrt(B)) | none"`
	WeightDecay  float64 `yaml:"weight_decay" help:"weight decay (BN parameters and biases excluded for lars)"`
	Momentum     float64 `yaml:"momentum" help:"momentum (lars, sgd); beta1 for adam/adamw"`
	Nesterov     bool    `yaml:"nesterov" help:"Nesterov momentum (sgd, lars)"`
	WarmupEpochs float64 `yaml:"warmup_epochs" help:"linear warmup length in epochs, then cosine decay to 0 per step (-1 = the paper's 10, at most 10% of the epochs)"`
	Temperature  float64 `yaml:"temperature" help:"NT-Xent temperature (0 = 0.5 for the cifar preset, 0.1 otherwise)"`

	Preset         string   `yaml:"preset" help:"augmentation preset: cifar|imagenet|stl10"`
	ImageSize      int      `yaml:"image_size" help:"side of the augmented views in pixels (0 = preset/dataset default)"`
	CropScaleMin   *float64 `yaml:"crop_scale_min" help:"random resized crop: smallest area fraction"`
	CropScaleMax   *float64 `yaml:"crop_scale_max" help:"random resized crop: largest area fraction"`
	FlipP          *float64 `yaml:"flip_p" help:"horizontal flip probability"`
	JitterStrength *float64 `yaml:"jitter_strength" help:"colour jitter strength s (brightness/contrast/saturation 0.8s, hue 0.2s)"`
	JitterP        *float64 `yaml:"jitter_p" help:"colour jitter probability"`
	GrayP          *float64 `yaml:"gray_p" help:"random grayscale probability"`
	BlurP          *float64 `yaml:"blur_p" help:"Gaussian blur probability (0 = off)"`

	Seed    int64 `yaml:"seed" help:"seed of model init, data order and augmentations"`
	Threads int   `yaml:"threads" help:"compute threads (0 = all cores; above the CPU count: capped to it, with a warning)"`
	// ThreadsForce is omitted from config.yaml when false, so that the
	// files (and Hash) of runs made before it existed are unchanged.
	ThreadsForce bool `yaml:"threads_force,omitempty" help:"use --threads even above the number of CPUs"`
	Workers      int  `yaml:"workers" help:"augmentation workers (0 = all cores)"`

	KNNEvery int     `yaml:"knn_every" help:"kNN monitor every N epochs (0 = off); also measured once at init"`
	KNNTrain string  `yaml:"knn_train" help:"labelled data spec for the kNN memory bank (default: the training data when labelled)"`
	KNNTest  string  `yaml:"knn_test" help:"labelled data spec for kNN queries (default: the dataset's test split when it has one)"`
	KNNK     int     `yaml:"knn_k" help:"neighbours of the kNN monitor"`
	KNNTau   float64 `yaml:"knn_tau" help:"temperature of the kNN weighted vote"`

	CheckpointEvery int  `yaml:"checkpoint_every" help:"checkpoint every N steps (0 = only at epoch ends)"`
	KeepCheckpoints int  `yaml:"keep_checkpoints" help:"keep the last K checkpoints"`
	Resume          bool `yaml:"resume" help:"continue from the last checkpoint in --out"`
	SkipBad         bool `yaml:"skip_bad" help:"skip unreadable images instead of stopping"`
	LogEvery        int  `yaml:"log_every" help:"write a metrics.jsonl step record every N steps"`

	ResumeFrom string `yaml:"resume_from" help:"continue from this checkpoint of --out (RUNDIR/checkpoints/ckpt-<step>.safetensors; implies --resume), e.g. an older one when the newest is damaged; later checkpoints are moved to RUNDIR/checkpoints/superseded/"`
}

// DefaultConfig returns the paper's defaults (SimCLR v1, appendix B) sized
// for small images: ResNet-18 on the embedded Fashion-MNIST.
func DefaultConfig() Config {
	return Config{
		Data:            data.DefaultSpec,
		Arch:            "resnet18",
		Width:           1,
		Head:            "v1",
		HeadOut:         128,
		Batch:           256,
		Epochs:          100,
		Optimizer:       "lars",
		LR:              0.3,
		LRScaling:       "linear",
		WeightDecay:     1e-6,
		Momentum:        0.9,
		WarmupEpochs:    -1,
		Preset:          "cifar",
		Seed:            1,
		KNNEvery:        1,
		KNNK:            200,
		KNNTau:          0.1,
		CheckpointEvery: 1000,
		KeepCheckpoints: 3,
		LogEvery:        10,
	}
}

// LoadConfigFile decodes a YAML file on top of c. Unknown keys are an
// error naming the file, the line and the key.
func (c *Config) LoadConfigFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return c.decodeYAML(path, b)
}

var unknownKeyRE = regexp.MustCompile(`line (\d+): field (\S+) not found in type`)

func (c *Config) decodeYAML(path string, b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := checkIntegerKeys(path, b); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, e := range te.Errors {
			if m := unknownKeyRE.FindStringSubmatch(e); m != nil {
				msgs = append(msgs, fmt.Sprintf("line %s: unknown key %q", m[1], m[2]))
			} else {
				msgs = append(msgs, e)
			}
		}
		return fmt.Errorf("config %s: %s", path, strings.Join(msgs, "; "))
	}
	return fmt.Errorf("config %s: %w", path, err)
}

// checkIntegerKeys refuses a non-integer value (batch: 16.7) for an integer
// key: the YAML decoder would truncate it to 16 silently, where the flag
// --batch 16.7 is an error.
func checkIntegerKeys(path string, b []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil // the decoder reports malformed documents
	}
	ints := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		switch t.Field(i).Type.Kind() {
		case reflect.Int, reflect.Int64:
			ints[yamlKey(t.Field(i))] = true
		}
	}
	m := doc.Content[0].Content
	var errs []string
	for i := 0; i+1 < len(m); i += 2 {
		k, v := m[i], m[i+1]
		if ints[k.Value] && (v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int") {
			errs = append(errs, fmt.Sprintf("line %d: %s: %q is not an integer", v.Line, k.Value, v.Value))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config %s: %s", path, strings.Join(errs, "; "))
	}
	return nil
}

// flagName maps a YAML key to its flag name.
func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// Flags records the flags bound to a Config by BindFlags.
type Flags struct {
	fs  *pflag.FlagSet
	val reflect.Value // *Config holding the flag values
}

// BindFlags registers one flag per Config field on fs, with defaults from
// def. After parsing, Flags.Apply copies the explicitly set ones onto a
// config, so that "file, then flags" precedence is easy to get right.
func BindFlags(fs *pflag.FlagSet, def Config) *Flags {
	holder := def
	v := reflect.ValueOf(&holder).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlKey(f)
		if f.Name == "Config" {
			name = "config"
		}
		if name == "" {
			continue
		}
		help := f.Tag.Get("help")
		p := v.Field(i).Addr().Interface()
		switch p := p.(type) {
		case *string:
			fs.StringVar(p, flagName(name), *p, help)
		case *int:
			fs.IntVar(p, flagName(name), *p, help)
		case *int64:
			fs.Int64Var(p, flagName(name), *p, help)
		case *float64:
			fs.Float64Var(p, flagName(name), *p, help)
		case *bool:
			fs.BoolVar(p, flagName(name), *p, help)
		case **float64:
			fs.Var(&optFloat{p}, flagName(name), help+" (default: preset)")
		default:
			panic(fmt.Sprintf("train: BindFlags: field %s has unsupported type %T", f.Name, p))
		}
	}
	return &Flags{fs: fs, val: reflect.ValueOf(&holder)}
}

func yamlKey(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	return name
}

// ConfigFile is the value of --config ("" when not given).
func (fl *Flags) ConfigFile() string { return fl.val.Elem().FieldByName("Config").String() }

// Changed reports whether the flag for YAML key was set explicitly.
func (fl *Flags) Changed(key string) bool { return fl.fs.Changed(flagName(key)) }

// Apply copies every explicitly set flag onto c.
func (fl *Flags) Apply(c *Config) {
	src := fl.val.Elem()
	dst := reflect.ValueOf(c).Elem()
	t := src.Type()
	for i := 0; i < t.NumField(); i++ {
		name := yamlKey(t.Field(i))
		if name == "" || !fl.fs.Changed(flagName(name)) {
			continue
		}
		dst.Field(i).Set(src.Field(i))
	}
}

// optFloat is a pflag.Value for an optional float (nil = unset).
type optFloat struct{ p **float64 }

func (o *optFloat) String() string {
	if o.p == nil || *o.p == nil {
		return ""
	}
	return strconv.FormatFloat(**o.p, 'g', -1, 64)
}

func (o *optFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*o.p = &v
	return nil
}

func (o *optFloat) Type() string { return "float" }

// Validate checks every field and returns all problems at once.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	oneOf := func(key, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad("%s %q: want one of %s", key, v, strings.Join(allowed, "|"))
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

	if c.Out == "" {
		bad("out: a run directory is required")
	}
	oneOf("arch", c.Arch, "resnet18", "resnet34", "resnet50")
	if !finite(c.Width) || c.Width < 0.125 || c.Width > 4 {
		bad("width %g: want 0.125 ... 4", c.Width)
	}
	if c.Stem != "" {
		oneOf("stem", c.Stem, "cifar", "imagenet")
	}
	oneOf("head", c.Head, "v1", "v2")
	if c.HeadHidden < 0 {
		bad("head_hidden %d: must be >= 0 (0 = encoder output dim)", c.HeadHidden)
	}
	if c.HeadOut < 1 {
		bad("head_out %d: must be >= 1", c.HeadOut)
	}
	if c.Batch < 2 {
		bad("batch %d: must be >= 2 (NT-Xent needs negatives)", c.Batch)
	}
	if c.Epochs < 1 {
		bad("epochs %d: must be >= 1", c.Epochs)
	}
	oneOf("optimizer", c.Optimizer, "lars", "sgd", "adam", "adamw")
	if !finite(c.LR) || c.LR <= 0 {
		bad("lr %g: must be > 0", c.LR)
	}
	oneOf("lr_scaling", c.LRScaling, "linear", "sqrt", "none")
	if !finite(c.WeightDecay) || c.WeightDecay < 0 {
		bad("weight_decay %g: must be >= 0", c.WeightDecay)
	}
	if !finite(c.Momentum) || c.Momentum < 0 || c.Momentum >= 1 {
		bad("momentum %g: want 0 <= momentum < 1", c.Momentum)
	}
	if c.Nesterov && c.Optimizer != "sgd" && c.Optimizer != "lars" {
		bad("nesterov: only for optimizers sgd and lars (got %s)", c.Optimizer)
	}
	if c.Nesterov && c.Momentum == 0 {
		bad("nesterov: needs momentum > 0")
	}
	if !finite(c.WarmupEpochs) || (c.WarmupEpochs < 0 && c.WarmupEpochs != -1) || c.WarmupEpochs > float64(c.Epochs) {
		bad("warmup_epochs %g: want 0 ... epochs (%d), or -1 for the default", c.WarmupEpochs, c.Epochs)
	}
	if !finite(c.Temperature) || c.Temperature < 0 || (c.Temperature > 0 && c.Temperature < 0.01) {
		bad("temperature %g: want >= 0.01 (0 = preset default)", c.Temperature)
	}
	oneOf("preset", c.Preset, "cifar", "imagenet", "stl10")
	if c.ImageSize < 0 || c.ImageSize == 1 || c.ImageSize > 1024 {
		bad("image_size %d: want 2 ... 1024 (0 = default)", c.ImageSize)
	}
	prob := func(key string, p *float64) {
		if p != nil && (!finite(*p) || *p < 0 || *p > 1) {
			bad("%s %g: want a probability in [0, 1]", key, *p)
		}
	}
	prob("flip_p", c.FlipP)
	prob("jitter_p", c.JitterP)
	prob("gray_p", c.GrayP)
	prob("blur_p", c.BlurP)
	prob("crop_scale_min", c.CropScaleMin)
	prob("crop_scale_max", c.CropScaleMax)
	if c.CropScaleMin != nil && *c.CropScaleMin <= 0 {
		bad("crop_scale_min %g: must be > 0", *c.CropScaleMin)
	}
	if c.CropScaleMin != nil && c.CropScaleMax != nil && *c.CropScaleMin > *c.CropScaleMax {
		bad("crop_scale_min %g > crop_scale_max %g", *c.CropScaleMin, *c.CropScaleMax)
	}
	if c.JitterStrength != nil && (!finite(*c.JitterStrength) || *c.JitterStrength < 0 || *c.JitterStrength > 2.5) {
		bad("jitter_strength %g: want 0 ... 2.5", *c.JitterStrength)
	}
	if c.Threads < 0 {
		bad("threads %d: must be >= 0 (0 = all cores)", c.Threads)
	}
	if c.Workers < 0 {
		bad("workers %d: must be >= 0 (0 = all cores)", c.Workers)
	}
	if c.KNNEvery < 0 {
		bad("knn_every %d: must be >= 0 (0 = off)", c.KNNEvery)
	}
	if c.KNNK < 1 {
		bad("knn_k %d: must be >= 1", c.KNNK)
	}
	if !finite(c.KNNTau) || c.KNNTau <= 0 {
		bad("knn_tau %g: must be > 0", c.KNNTau)
	}
	if c.CheckpointEvery < 0 {
		bad("checkpoint_every %d: must be >= 0 (0 = epoch ends only)", c.CheckpointEvery)
	}
	if c.KeepCheckpoints < 1 {
		bad("keep_checkpoints %d: must be >= 1", c.KeepCheckpoints)
	}
	if c.LogEvery < 1 {
		bad("log_every %d: must be >= 1", c.LogEvery)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// resolveStem picks the stem for images of the given side.
func resolveStem(side int) string {
	if side <= 64 {
		return "cifar"
	}
	return "imagenet"
}

// defaultTemperature is the paper's: 0.5 for CIFAR-size, 0.1 for ImageNet-size.
func defaultTemperature(preset string) float64 {
	if preset == "cifar" {
		return 0.5
	}
	return 0.1
}

// MarshalYAML-friendly form: the resolved config written to config.yaml.
func (c Config) yamlBytes() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Save writes the config as YAML to path atomically.
func (c Config) Save(path string) error {
	b, err := c.yamlBytes()
	if err != nil {
		return fmt.Errorf("config: encode: %w", err)
	}
	hdr := []byte("# simclr pretrain: resolved configuration of this run\n")
	return writeFileAtomic(path, append(hdr, b...))
}

// Hash identifies the training trajectory: it covers every key that changes
// the sequence of losses, and leaves out run management (out, resume,
// threads, workers, logging, checkpointing and the kNN monitor), which may
// differ when a run is resumed.
func (c Config) Hash() string {
	h := c.trajectory()
	b, err := h.yamlBytes()
	if err != nil {
		panic(err) // Config only holds plain values
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

func (c Config) trajectory() Config {
	h := c
	h.Out, h.Config = "", ""
	h.Resume, h.ResumeFrom = false, ""
	h.Threads, h.ThreadsForce, h.Workers = 0, false, 0
	h.LogEvery, h.CheckpointEvery, h.KeepCheckpoints = 0, 0, 0
	h.KNNEvery, h.KNNTrain, h.KNNTest, h.KNNK, h.KNNTau = 0, "", "", 0, 0
	return h
}

// diffKeys lists the YAML keys whose values differ between a and b
// (among those that enter Hash).
func diffKeys(a, b Config) []string {
	ya, _ := a.trajectory().yamlBytes()
	yb, _ := b.trajectory().yamlBytes()
	var ma, mb map[string]any
	_ = yaml.Unmarshal(ya, &ma)
	_ = yaml.Unmarshal(yb, &mb)
	var out []string
	t := reflect.TypeOf(a)
	for i := 0; i < t.NumField(); i++ {
		k := yamlKey(t.Field(i))
		if k == "" {
			continue
		}
		if fmt.Sprint(ma[k]) != fmt.Sprint(mb[k]) {
			out = append(out, fmt.Sprintf("%s (%v vs %v)", k, ma[k], mb[k]))
		}
	}
	return out
}
