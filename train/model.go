package train

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/stfile"
)

// NewModel builds the encoder and projection head described by a resolved
// config (Stem must be set), initialised deterministically from cfg.Seed.
func NewModel(cfg Config) (*nn.Model, error) {
	if cfg.Stem == "" {
		return nil, fmt.Errorf("train: NewModel: stem is not resolved (set cifar or imagenet)")
	}
	return nn.NewModel(
		nn.ResNetConfig{Arch: cfg.Arch, Width: cfg.Width, Stem: cfg.Stem, ZeroInitResidual: cfg.ZeroInit, Seed: uint64(cfg.Seed)},
		nn.HeadConfig{Version: cfg.Head, Hidden: cfg.HeadHidden, Out: cfg.HeadOut, Seed: uint64(cfg.Seed) + 1},
	)
}

// Checkpoint tensor names: the encoder's torchvision names under
// nn.EncoderPrefix, the head's own names (already "head.<i>...."), optimizer
// state under "optim.". This is the state_dict layout of a PyTorch module
// with .encoder and .head attributes (as in the reference simclr_ref.py).
const (
	encoderPrefix = nn.EncoderPrefix
	optimPrefix   = "optim."
)

// modelEntry is a model tensor to save or restore.
type modelEntry struct {
	name    string
	shape   []int
	data    []float32 // nil for counters
	counter *int64
}

// modelEntries lists every tensor of the model: parameters, buffers (BN
// running statistics) and BN batch counters.
func modelEntries(m *nn.Model) []modelEntry {
	var es []modelEntry
	add := func(prefix string, ps []nn.Param, bs []nn.Buffer, cs []nn.Counter) {
		for _, p := range ps {
			es = append(es, modelEntry{name: prefix + p.Name, shape: p.T.Shape(), data: p.T.Data()})
		}
		for _, b := range bs {
			es = append(es, modelEntry{name: prefix + b.Name, shape: b.T.Shape(), data: b.T.Data()})
		}
		for _, c := range cs {
			es = append(es, modelEntry{name: prefix + c.Name, counter: c.N})
		}
	}
	add(encoderPrefix, m.Encoder.Params(), m.Encoder.Buffers(), m.Encoder.Counters())
	add("", m.Head.Params(), m.Head.Buffers(), m.Head.Counters())
	return es
}

// modelTensors returns the model's tensors for a checkpoint (sharing memory).
func modelTensors(m *nn.Model) []tensorEntry {
	var ts []tensorEntry
	for _, e := range modelEntries(m) {
		if e.counter != nil {
			ts = append(ts, tensorEntry{Name: e.name, Shape: []int{}, I64: []int64{*e.counter}})
		} else {
			ts = append(ts, tensorEntry{Name: e.name, Shape: e.shape, F32: e.data})
		}
	}
	return ts
}

// loadModel copies the model tensors of a checkpoint into m (built as arch). Every model
// tensor must be present with the right shape; extra model tensors (names
// under encoder./head.) are an error too, since they mean a different
// architecture.
func loadModel(m *nn.Model, ck *checkpointFile, arch string) error {
	want := map[string]bool{}
	for _, e := range modelEntries(m) {
		want[e.name] = true
		t, ok := ck.Tensors[e.name]
		if !ok {
			return fmt.Errorf("checkpoint %s: tensor %s is missing (does the checkpoint match arch %s?)", ck.Path, e.name, arch)
		}
		if e.counter != nil {
			if len(t.I64) != 1 {
				return fmt.Errorf("checkpoint %s: tensor %s: want an int64 scalar, got shape %v", ck.Path, e.name, t.Shape)
			}
			*e.counter = t.I64[0]
			continue
		}
		if t.F32 == nil || !slices.Equal(t.Shape, e.shape) {
			return fmt.Errorf("checkpoint %s: tensor %s has shape %v, the configured model wants %v", ck.Path, e.name, t.Shape, e.shape)
		}
		copy(e.data, t.F32)
	}
	var extra []string
	for _, n := range ck.Names {
		if (strings.HasPrefix(n, encoderPrefix) || strings.HasPrefix(n, "head.")) && !want[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("checkpoint %s: %d tensors the configured model does not have, e.g. %s", ck.Path, len(extra), extra[0])
	}
	return nil
}

// Run is a pretraining run loaded from its directory: the resolved config
// and the model rebuilt with the weights of the last checkpoint.
type Run struct {
	Dir        string
	Config     Config
	Model      *nn.Model
	Checkpoint string // path of the checkpoint loaded
	Step       int    // optimizer steps taken
	Epoch      int    // completed epochs
	Meta       Meta
	// Warning is a line to show the user when the checkpoint could not be
	// verified (written before checksums were stored); "" otherwise.
	Warning string
}

// LoadRun opens a run directory written by Pretrain and loads its last
// checkpoint, verified: a damaged one is refused with a
// *CorruptCheckpointError that lists the older ones that verify. The
// config comes from the checkpoint itself (so a copied checkpoints folder
// is enough), falling back to RUNDIR/config.yaml.
func LoadRun(dir string) (*Run, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("run %s: not a directory", dir)
	}
	ck, err := newestCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	r, err := runFromCheckpoint(ck)
	if err != nil {
		return nil, err
	}
	r.Dir = dir
	r.Config.Out = dir // the run may have been moved since
	return r, nil
}

// LoadCheckpoint loads one checkpoint file into a Run (Dir is the run
// directory it belongs to, when it sits in RUNDIR/checkpoints).
func LoadCheckpoint(path string) (*Run, error) {
	ck, err := readCheckpoint(path)
	if err != nil {
		return nil, err
	}
	return runFromCheckpoint(ck)
}

// runFromCheckpoint rebuilds the model of a checkpoint already read and
// verified.
func runFromCheckpoint(ck *checkpointFile) (*Run, error) {
	path := ck.Path
	cfg := DefaultConfig()
	rundir := filepath.Dir(filepath.Dir(path))
	if len(ck.Config) > 0 {
		if err := cfg.decodeYAML(path+" (embedded config)", ck.Config); err != nil {
			return nil, err
		}
	} else if err := cfg.LoadConfigFile(filepath.Join(rundir, "config.yaml")); err != nil {
		return nil, fmt.Errorf("checkpoint %s has no embedded config: %w", path, err)
	}
	m, err := NewModel(cfg)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: rebuild model: %w", path, err)
	}
	if err := loadModel(m, ck, cfg.Arch); err != nil {
		return nil, err
	}
	r := &Run{Dir: rundir, Config: cfg, Model: m, Checkpoint: path, Step: ck.Meta.Step, Epoch: ck.Meta.Epoch, Meta: ck.Meta}
	if !ck.Verified {
		r.Warning = stfile.UnverifiedWarning(path)
	}
	return r, nil
}
