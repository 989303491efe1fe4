package train

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/method"
	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/optim"
)

// Config holds every hyperparameter of a pretraining run. Each field is a
// YAML key (snake_case, the `yaml` tag) and a command-line flag of the same
// name with dashes (weight_decay -> --weight-decay); the keys of the
// augment block are flags --augment.KEY (augment.blur_sigma_max ->
// --augment.blur-sigma-max); see BindFlags. Files are decoded by
// LoadConfigFile (config_yaml.go), flags bound by BindFlags
// (config_flags.go).
//
// Zero values of a few fields mean "choose for me" and are filled in by
// Resolve: Stem ("" -> cifar for images of at most 64 px, else imagenet),
// Temperature (0 -> 0.5 for the cifar preset, 0.1 otherwise), WarmupEpochs
// (-1 -> 10, the paper's, but at most a tenth of the epochs), HeadHidden
// (0 -> the encoder's output dimension) and the keys of the augment block
// (unset -> the preset's value). The config saved in RUNDIR/config.yaml is
// the resolved one, with every augment key, so a run is fully described by
// it.
//
// The allowed values of the fields that configure another package are
// that package's: Validate asks nn (arch, width, stem, head), optim
// (optimizer, momentum, weight decay, Nesterov, lr scaling) and augment
// (preset, augment block).
type Config struct {
	Data   string `yaml:"data" help:"training images: a data spec KIND:PATH[@SPLIT] (cifar10:, cifar100:, stl10:, folder:, fashion-mnist:, mnist:; a PATH that exists is never split at @); default: the embedded Fashion-MNIST"`
	Out    string `yaml:"out" help:"run directory (config, checkpoints, metrics, plots)"`
	Config string `yaml:"-" help:"YAML file with any of these keys; flags set explicitly override it"`

	Arch       string  `yaml:"arch" help:"encoder architecture"`
	Width      float64 `yaml:"width" help:"width multiplier of the encoder, in (0, 4] (nn.MaxWidth)"`
	Stem       string  `yaml:"stem" help:"cifar (3x3/1, no max-pool) | imagenet (7x7/2 + max-pool); default: cifar for images <= 64 px"`
	ZeroInit   bool    `yaml:"zero_init_residual" help:"zero-initialise the last BN gamma of each residual block"`
	Head       string  `yaml:"head" help:"projection head: v1 (2 layers) | v2 (3 layers, BN)"`
	HeadHidden int     `yaml:"head_hidden" help:"hidden width of the head (0 = encoder output dim)"`
	HeadOut    int     `yaml:"head_out" help:"output dim of the head (z)"`

	Batch        int     `yaml:"batch" help:"source images per step (each gives 2 views)"`
	Epochs       int     `yaml:"epochs" help:"passes over the training set"`
	Optimizer    string  `yaml:"optimizer" help:"optimizer"`
	LR           float64 `yaml:"lr" help:"base learning rate, before scaling"`
	LRScaling    string  `yaml:"lr_scaling" help:"linear (lr*B/256) | sqrt (lr*sqrt(B)) | none"`
	WeightDecay  float64 `yaml:"weight_decay" help:"weight decay (BN parameters and biases excluded for lars)"`
	Momentum     float64 `yaml:"momentum" help:"momentum (lars, sgd); beta1 for adam/adamw"`
	Nesterov     bool    `yaml:"nesterov" help:"Nesterov momentum (sgd, lars)"`
	WarmupEpochs float64 `yaml:"warmup_epochs" help:"linear warmup length in epochs, then cosine decay to 0 per step (-1 = the paper's 10, at most 10% of the epochs)"`
	Temperature  float64 `yaml:"temperature" help:"temperature of the contrastive loss (0 = 0.5 for the cifar preset, 0.1 otherwise)"`
	Method       string  `yaml:"method" help:"training method: simclr (no labels) | supcon (supervised contrastive, needs labelled data)"`

	// Preset names the augmentation preset (augment.Preset) that supplies
	// every key the augment block does not set; it also picks the default
	// temperature.
	Preset string `yaml:"preset" help:"augmentation preset: the defaults of the augment block"`
	// Augment is the `augment:` block: any key of augment.Config, each also
	// a flag --augment.KEY (dashes for underscores). The old top-level keys
	// image_size, crop_scale_min, crop_scale_max, flip_p, jitter_strength,
	// jitter_p, gray_p and blur_p (and their flags) still work: see
	// legacyAugmentKeys.
	Augment augment.Overrides `yaml:"augment,omitempty"`

	Seed    int64 `yaml:"seed" help:"seed of model init, data order and augmentations"`
	Threads int   `yaml:"threads" help:"compute threads (0 = all cores; above the CPU count: capped to it, with a warning)"`
	// ThreadsForce is omitted from config.yaml when false, so that the
	// files (and Hash) of runs made before it existed are unchanged.
	ThreadsForce bool `yaml:"threads_force,omitempty" help:"use --threads even above the number of CPUs"`
	Workers      int  `yaml:"workers" help:"augmentation workers (0 = all cores)"`
	// Deterministic picks kernels by fixed rules instead of timing (see
	// backends.Options). Like Threads it is left out of Hash: it changes the
	// rounding of the kernels, not what the run computes. Omitted from
	// config.yaml when false, as ThreadsForce is.
	Deterministic bool `yaml:"deterministic,omitempty" help:"choose kernels by fixed rules instead of timing: two runs with the same seed and --threads on the same machine are bit-identical (see the README's Reproducibility section)"`

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

	// Data-parallel runs (mpirun -np N simclr pretrain ...; see package dist).
	BN             string `yaml:"bn" help:"batch norm under mpirun: global (statistics of the whole global batch, the paper's) | local (each process's own, leaky; for comparison)"`
	SyncCheckEvery int    `yaml:"sync_check_every" help:"debug, under mpirun: compare a hash of the weights across processes every N steps (0 = off)"`
	// WorldSize is the number of processes of the run that wrote the
	// file (recorded, not a setting: a run may resume with another).
	WorldSize int `yaml:"world_size" flag:"-"`
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
		BN:              "global",
		Method:          method.Default,
	}
}

// choices lists, for the keys whose allowed values another package owns,
// that package's list; the flags' help shows it.
var choices = map[string]func() []string{
	"arch":       nn.ArchNames,
	"optimizer":  optim.Names,
	"lr_scaling": optim.ScalingNames,
	"preset":     augment.PresetNames,
}

// Validate checks every field and returns all problems at once. The limits
// of the fields another package consumes are that package's (nn, optim,
// augment): Validate asks it rather than repeating them.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	// check records err, prefixed with key unless it names the key already.
	check := func(key string, err error) {
		switch {
		case err == nil:
		case strings.Contains(err.Error(), key):
			errs = append(errs, err.Error())
		default:
			bad("%s: %v", key, err)
		}
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

	if c.Out == "" {
		bad("out: a run directory is required")
	}
	check("arch", nn.CheckArch(c.Arch))
	check("width", nn.CheckWidth(c.Width))
	if c.Stem != "" { // "" = chosen by Resolve
		check("stem", nn.CheckStem(c.Stem))
	}
	check("head", nn.CheckHeadVersion(c.Head))
	check("optimizer", optim.CheckName(c.Optimizer))
	check("lr_scaling", optim.CheckScaling(c.LRScaling))
	check("weight_decay", optim.CheckWeightDecay(c.WeightDecay))
	check("momentum", optim.CheckMomentum(c.Momentum))
	check("nesterov", optim.CheckNesterov(c.Optimizer, c.Nesterov, c.Momentum))
	if _, err := method.Lookup(c.Method); err != nil {
		check("method", err)
	}
	if err := checkPreset(c.Preset); err != nil {
		check("preset", err)
	} else if _, err := c.augmentConfig(); err != nil {
		check("augment", err)
	}
	// Counts with a lower bound: key, value, bound, what the bound means.
	for _, r := range []struct {
		key    string
		v, min int
		why    string
	}{
		{"head_hidden", c.HeadHidden, 0, " (0 = encoder output dim)"},
		{"head_out", c.HeadOut, 1, ""},
		{"batch", c.Batch, 2, " (NT-Xent needs negatives)"},
		{"epochs", c.Epochs, 1, ""},
		{"threads", c.Threads, 0, " (0 = all cores)"},
		{"workers", c.Workers, 0, " (0 = all cores)"},
		{"knn_every", c.KNNEvery, 0, " (0 = off)"},
		{"knn_k", c.KNNK, 1, ""},
		{"checkpoint_every", c.CheckpointEvery, 0, " (0 = epoch ends only)"},
		{"keep_checkpoints", c.KeepCheckpoints, 1, ""},
		{"log_every", c.LogEvery, 1, ""},
		{"sync_check_every", c.SyncCheckEvery, 0, " (0 = off)"},
	} {
		if r.v < r.min {
			bad("%s %d: must be >= %d%s", r.key, r.v, r.min, r.why)
		}
	}
	if !finite(c.LR) || c.LR <= 0 {
		bad("lr %g: must be > 0", c.LR)
	}
	if !finite(c.WarmupEpochs) || (c.WarmupEpochs < 0 && c.WarmupEpochs != -1) || c.WarmupEpochs > float64(c.Epochs) {
		bad("warmup_epochs %g: want 0 ... epochs (%d), or -1 for the default", c.WarmupEpochs, c.Epochs)
	}
	if !finite(c.Temperature) || c.Temperature < 0 || (c.Temperature > 0 && c.Temperature < 0.01) {
		bad("temperature %g: want >= 0.01 (0 = preset default)", c.Temperature)
	}
	if c.BN != "global" && c.BN != "local" {
		bad("bn %q: want global or local", c.BN)
	}
	if !finite(c.KNNTau) || c.KNNTau <= 0 {
		bad("knn_tau %g: must be > 0", c.KNNTau)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// checkPreset accepts the names of augment's preset registry exactly
// (augment.Preset also takes "CIFAR", but the default temperature and the
// saved config go by the exact name).
func checkPreset(name string) error {
	if !slices.Contains(augment.PresetNames(), name) {
		return fmt.Errorf("preset %q: want one of %s", name, strings.Join(augment.PresetNames(), "|"))
	}
	return nil
}

// augmentConfig is the augmentation policy: the preset with the augment
// block laid over it, validated by augment.
func (c *Config) augmentConfig() (augment.Config, error) {
	if err := checkPreset(c.Preset); err != nil {
		return augment.Config{}, err
	}
	ac, err := augment.Preset(c.Preset)
	if err != nil {
		return ac, err
	}
	ac = c.Augment.Apply(ac)
	return ac, ac.Validate()
}

// Resolve opens nothing: it fills in the derived defaults of a validated
// config (stem, temperature, warm-up, every key of the augment block from
// the preset) and returns the augmentation policy. Resolving a resolved
// config changes nothing.
func (c *Config) Resolve() (augment.Config, error) {
	ac, err := c.augmentConfig()
	if err != nil {
		return ac, err
	}
	c.Augment = augment.All(ac)
	if c.Stem == "" {
		c.Stem = resolveStem(ac.Size)
	}
	if c.Temperature == 0 {
		c.Temperature = defaultTemperature(c.Preset)
	}
	if c.WarmupEpochs == -1 {
		c.WarmupEpochs = math.Min(10, float64(c.Epochs)/10)
	}
	return ac, nil
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
