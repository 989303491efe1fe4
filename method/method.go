// Package method holds the training methods simclr pretrains with, behind
// one small interface and a registry by name, as solo-learn's method
// registry and GoMLX's backend registry do: the trainer, the config
// (`method:` key, --method flag) and `simclr bench` know methods only by
// name. Two are registered: simclr (NT-Xent, Chen et al. 2020; no labels)
// and supcon (supervised contrastive, Khosla et al. 2020; class labels).
//
// # Adding a method
//
//  1. Write method/NAME.go: a type implementing Method (and AfterStepper if
//     it has work after each optimizer step, such as a momentum encoder),
//     and an init() that calls Register with its Spec (Name, a one-line
//     Doc, whether it needs Labels, and New).
//  2. If it needs a new loss, add it to package loss with its golden test
//     and generator (loss.Contrastive covers any "positives are the rows of
//     the same group" loss in one line, as SupCon does).
//  3. If it has state of its own beyond the model (a predictor, a momentum
//     encoder), give it checkpoint names in train/model.go.
//
// The registry validates the config's `method` key and --method flags, and
// Spec.CheckData refuses data the method cannot use; nothing else changes.
package method

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/loss"
	"github.com/simclr-go/simclr/nn"
)

// Method is what a training step computes from a batch of view pairs.
type Method interface {
	// Params are the parameters the optimizer trains, named as in
	// checkpoints (nn.Model.NamedParams for the model's).
	Params() []nn.Param
	// Loss records the loss of batch b on tp (in training mode) and
	// returns it with its statistics. Its error names what in the batch is
	// unusable (an image without a label, for a method that needs them).
	Loss(tp *engine.Tape, b *data.PairBatch) (*engine.Tensor, loss.Stats, error)
}

// AfterStepper is a Method with work after every optimizer step (step is
// the number of steps taken, from 1).
type AfterStepper interface {
	AfterStep(step int) error
}

// Config is what methods share from the run's configuration.
type Config struct {
	// Temperature τ of the contrastive loss (resolved, > 0).
	Temperature float64
	// Gather, when set, turns this process's projections [2n, D] into the
	// global batch's [2nR, D] of a data-parallel job of R processes (every
	// process's first views in rank order, then their second views; the
	// gradient flows back to this process's rows), and GatherLabels the
	// labels of its n images into the global batch's nR, in the same
	// order. Nil: one process.
	Gather       func(tp *engine.Tape, z *engine.Tensor) *engine.Tensor
	GatherLabels func(labels []int) ([]int, error)
}

// twoView is what the methods on SimCLR's network share: the model (encoder
// and projection head), its parameters and the config.
type twoView struct {
	model  *nn.Model
	params []nn.Param
	cfg    Config
}

func newTwoView(m *nn.Model, cfg Config) twoView {
	return twoView{model: m, params: m.NamedParams(), cfg: cfg}
}

func (v *twoView) Params() []nn.Param { return v.params }

func (v *twoView) tau() float32 { return float32(v.cfg.Temperature) }

// projections is z = g(f(x)) of both views of the batch, gathered over
// the processes of a data-parallel job.
func (v *twoView) projections(tp *engine.Tape, b *data.PairBatch) *engine.Tensor {
	z := v.model.Forward(tp, views(b), true)
	if v.cfg.Gather != nil {
		z = v.cfg.Gather(tp, z)
	}
	return z
}

// Spec describes a registered method.
type Spec struct {
	Name string
	// Doc is one line for --help and error messages.
	Doc string
	// Labels says the method trains on class labels, so its data must
	// have them (CheckData).
	Labels bool
	// New builds the method around a model.
	New func(m *nn.Model, cfg Config) (Method, error)
}

var registry = map[string]Spec{}

// Default is the method used when none is named.
const Default = "simclr"

// Register adds a method; it panics on a duplicate or incomplete Spec
// (a programming error, found when the binary starts).
func Register(s Spec) {
	if s.Name == "" || s.New == nil {
		panic(fmt.Sprintf("method: Register: incomplete spec %+v", s))
	}
	if _, dup := registry[s.Name]; dup {
		panic("method: Register: duplicate method " + s.Name)
	}
	registry[s.Name] = s
}

// Names lists the registered methods, sorted.
func Names() []string {
	ns := make([]string, 0, len(registry))
	for n := range registry {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Lookup returns the Spec of a registered method; the error lists the
// registered names.
func Lookup(name string) (Spec, error) {
	s, ok := registry[name]
	if !ok {
		return Spec{}, fmt.Errorf("method %q: want one of %s", name, strings.Join(Names(), "|"))
	}
	return s, nil
}

// Help is a one-line description of every method, for flag help.
func Help() string {
	var parts []string
	for _, n := range Names() {
		parts = append(parts, n+" ("+registry[n].Doc+")")
	}
	return strings.Join(parts, " | ")
}

// New builds the named method around a model.
func New(name string, m *nn.Model, cfg Config) (Method, error) {
	s, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if !(cfg.Temperature > 0) {
		return nil, fmt.Errorf("method %s: temperature %g: must be > 0", name, cfg.Temperature)
	}
	return s.New(m, cfg)
}

// CheckData returns an error when ds (named spec) cannot train the method:
// a method that needs labels on a dataset without them.
func (s Spec) CheckData(ds data.Dataset, spec string) error {
	if s.Labels && ds.NumClasses() == 0 {
		return fmt.Errorf("method %s trains on class labels, but %s has none (an unlabelled dataset); use --method %s, or a labelled dataset such as a class folder (folder:PATH with one subfolder per class)",
			s.Name, spec, Default)
	}
	return nil
}

// views is the batch's two views as one [2N, 3, S, S] tensor: rows 0..N-1
// the first view of each image, rows N..2N-1 the second.
func views(b *data.PairBatch) *engine.Tensor {
	return engine.FromData(b.Views, 2*b.N, 3, b.Size, b.Size)
}

// labels returns the batch's labels, or an error naming the first image
// without one.
func labels(b *data.PairBatch) ([]int, error) {
	if len(b.Labels) != b.N {
		return nil, fmt.Errorf("batch of %d images carries %d labels", b.N, len(b.Labels))
	}
	if i := slices.IndexFunc(b.Labels, func(l int) bool { return l < 0 }); i >= 0 {
		return nil, fmt.Errorf("image %d of the batch (dataset index %d) has no label", i, b.Indices[i])
	}
	return b.Labels, nil
}
