package nn

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Arch is one encoder architecture: the name a config's `arch:` key, the
// flags and an export's metadata use, and how to build it. Every consumer
// (config validation through CheckArch, model building through NewEncoder,
// checkpoints and exports, which save and reload whatever Params, Buffers
// and Counters the built Net has) asks this registry, so a new
// architecture is its own file with one RegisterArch call in an init
// function; see docs/extending.md.
type Arch struct {
	Name string
	// Doc is a short description for help texts and documentation.
	Doc string
	// New builds the encoder, initialised deterministically from cfg.Seed.
	// cfg.Arch is Name; Width, Stem and InChannels have been validated
	// (CheckWidth, CheckStem) and InChannels is filled in (3 when 0).
	// Parameter names are those of the PyTorch module the architecture
	// mirrors, since checkpoints and exports store them as they are.
	New func(cfg ResNetConfig) (Encoder, error)
}

// Encoder is a Net built by an Arch. It reports the config it was built
// from (InChannels filled in), which exports record in their metadata and
// evaluation of an exported encoder rebuilds it from.
type Encoder interface {
	Net
	Config() ResNetConfig
	// InChannels is the number of input channels Forward expects.
	InChannels() int
}

var archRegistry = map[string]Arch{}

// RegisterArch adds an architecture. It is meant for init functions: a
// name registered twice, an empty name or a nil New is a programming
// error and panics.
func RegisterArch(a Arch) {
	if a.Name == "" || a.New == nil {
		panic("nn: RegisterArch needs a Name and a New function")
	}
	if _, dup := archRegistry[a.Name]; dup {
		panic("nn: architecture " + a.Name + " registered twice")
	}
	archRegistry[a.Name] = a
}

// ArchNames lists the registered encoder architectures, sorted.
func ArchNames() []string { return slices.Sorted(maps.Keys(archRegistry)) }

// CheckArch, CheckWidth and CheckStem validate one field of a ResNetConfig.
// They are the only copy of these limits: ResNetConfig.Validate and the
// training config (train.Config.Validate) both call them. The errors name
// the field (arch, width, stem) and what is allowed.
func CheckArch(arch string) error {
	if _, ok := archRegistry[arch]; !ok {
		return fmt.Errorf("arch %q: want one of %s", arch, strings.Join(ArchNames(), "|"))
	}
	return nil
}

// NewEncoder validates cfg and builds the encoder its Arch names.
func NewEncoder(cfg ResNetConfig) (Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.InChannels == 0 {
		cfg.InChannels = 3
	}
	return archRegistry[cfg.Arch].New(cfg)
}
