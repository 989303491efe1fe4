package main

// Shared plumbing of the commands that use a trained encoder (knn,
// linear-eval, finetune, embed, export, neighbors).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/backends"
	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/stfile"
	"github.com/simclr-go/simclr/train"
	"github.com/spf13/cobra"
)

// runFlags are the flags every encoder-using command shares.
type runFlags struct {
	run      string
	baseline string
	threads  int
	// threadsForce keeps a --threads above the CPU count (see train.CapThreads).
	threadsForce bool
	determ       bool // --deterministic
	batch        int
	workers      int
}

func addRunFlags(c *cobra.Command, f *runFlags, baseline bool) {
	c.Flags().StringVar(&f.run, "run", "", "run directory written by 'simclr pretrain' (its last checkpoint is used), one of its checkpoints (RUNDIR/checkpoints/ckpt-<step>.safetensors), or an encoder written by 'simclr export'; every file is verified (checksums, finite weights) before use")
	if baseline {
		c.Flags().StringVar(&f.baseline, "baseline", "", "random-init: evaluate a freshly initialised encoder of the run's architecture instead of the trained one")
	}
	c.Flags().IntVar(&f.threads, "threads", 0, "compute threads (0 = all cores; above the CPU count: capped to it, with a warning)")
	c.Flags().BoolVar(&f.threadsForce, "threads-force", false, "use --threads even above the number of CPUs")
	c.Flags().BoolVar(&f.determ, "deterministic", false, "choose kernels by fixed rules instead of timing: the same results, bit for bit, on every run with the same --threads on this machine (see the README)")
	c.Flags().IntVar(&f.batch, "eval-batch", 256, "images per forward pass when computing embeddings")
	c.Flags().IntVar(&f.workers, "workers", 0, "image decoding goroutines (0 = all cores)")
	c.PreRunE = func(*cobra.Command, []string) error { return f.validate() }
}

// validate checks the shared flags before a command opens or embeds
// anything.
func (f *runFlags) validate() error {
	switch {
	case f.threads < 0:
		return fmt.Errorf("--threads %d: want >= 0 (0 = all cores)", f.threads)
	case f.batch < 1:
		return fmt.Errorf("--eval-batch %d: want >= 1", f.batch)
	case f.workers < 0:
		return fmt.Errorf("--workers %d: want >= 0 (0 = all cores)", f.workers)
	}
	return nil
}

// positiveFinite says whether x is a usable positive rate or temperature.
func positiveFinite(x float64) bool { return x > 0 && !math.IsInf(x, 0) }

// loadedRun is an encoder ready to use.
type loadedRun struct {
	Run     *train.Run
	Model   *nn.Model
	Aug     augment.Config // the run's augmentation policy (size, normalisation)
	Backend engine.Backend
	Tape    *engine.Tape
	// Source says which weights are used, for reports.
	Source string
}

func openRun(f *runFlags, stderr io.Writer) (*loadedRun, error) {
	if f.run == "" {
		return nil, errors.New("--run is required: a directory written by 'simclr pretrain', one of its checkpoints, or a file written by 'simclr export'")
	}
	lr, err := loadWeights(f.run)
	if err != nil {
		return nil, err
	}
	if lr.Run.Warning != "" {
		fmt.Fprintln(stderr, lr.Run.Warning)
	}
	cfg := lr.Run.Config
	switch f.baseline {
	case "":
	case "random-init":
		if lr.Model, err = train.NewModel(cfg); err != nil {
			return nil, err
		}
		lr.Source = fmt.Sprintf("random-init baseline (%s x%g, %s stem, seed %d; run %s not used for weights)", cfg.Arch, cfg.Width, cfg.Stem, cfg.Seed, f.run)
	default:
		return nil, fmt.Errorf("--baseline %q: the only baseline is random-init", f.baseline)
	}
	if lr.Backend, err = backends.New(backends.Options{Threads: train.CapThreads(f.threads, f.threadsForce, stderr), Deterministic: f.determ}); err != nil {
		return nil, err
	}
	lr.Tape = engine.NewTape(lr.Backend)
	fmt.Fprintf(stderr, "encoder: %s x%g (%s stem, h %d-d) from %s; backend %s\n",
		cfg.Arch, cfg.Width, cfg.Stem, lr.Model.Encoder.OutDim(), lr.Source, lr.Backend.Name())
	return lr, nil
}

// loadWeights loads what --run names: a run directory (its newest
// checkpoint), one checkpoint file, or an exported encoder, each verified
// (checksums, finite weights). An exported encoder has no projection head
// (Model.Head is nil); its config is rebuilt from the file's metadata.
func loadWeights(path string) (*loadedRun, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--run: %w", err)
	}
	var r *train.Run
	var exported map[string]string
	switch {
	case st.IsDir():
		if r, err = train.LoadRun(path); err != nil {
			var ce *train.CorruptCheckpointError
			if errors.As(err, &ce) && len(ce.Valid) > 0 {
				ce.Hint = "use one of them with --run PATH"
			}
			return nil, err
		}
	default:
		md, err := stfile.PeekMetadata(path)
		if err != nil {
			return nil, fmt.Errorf("--run %w", err)
		}
		switch md["format"] {
		case train.CheckpointFormat:
			if r, err = train.LoadCheckpoint(path); err != nil {
				return nil, err
			}
		case eval.ExportFormat:
			ex, err := eval.ReadExport(path)
			if err != nil {
				return nil, err
			}
			if r, err = exportedRun(ex); err != nil {
				return nil, err
			}
			exported = ex.Meta
		default:
			return nil, fmt.Errorf("--run %s: neither a simclr checkpoint nor an exported encoder (metadata format %q)", path, md["format"])
		}
	}
	cfg := r.Config
	acfg, err := cfg.Resolve()
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", path, err)
	}
	lr := &loadedRun{Run: r, Model: r.Model, Aug: acfg,
		Source: fmt.Sprintf("%s (step %d, epoch %d)", r.Checkpoint, r.Step, r.Epoch)}
	if exported != nil {
		lr.Source = "exported encoder " + path
		// The normalisation the encoder was trained with.
		for key, dst := range map[string]*[3]float32{"mean": &lr.Aug.Mean, "std": &lr.Aug.Std} {
			if v, ok := exported[key]; ok {
				if _, err := fmt.Sscanf(v, "%g,%g,%g", &dst[0], &dst[1], &dst[2]); err != nil {
					return nil, fmt.Errorf("exported encoder %s: metadata %s %q: %v", path, key, v, err)
				}
			}
		}
	}
	return lr, nil
}

// exportedRun describes an exported encoder as a run without a head: the
// encoder's architecture from the file, and the preset and image size its
// metadata records (the defaults for files that lack them).
func exportedRun(ex *eval.Export) (*train.Run, error) {
	cfg := train.DefaultConfig()
	rc := ex.Encoder.Config()
	cfg.Arch, cfg.Width, cfg.Stem = rc.Arch, rc.Width, rc.Stem
	if p, ok := ex.Meta["preset"]; ok {
		cfg.Preset = p
	}
	if s, ok := ex.Meta["image_size"]; ok {
		if err := cfg.Augment.Set("size", s); err != nil {
			return nil, fmt.Errorf("exported encoder %s: metadata image_size %q: %v", ex.Path, s, err)
		}
	}
	r := &train.Run{Config: cfg, Model: &nn.Model{Encoder: ex.Encoder}, Checkpoint: ex.Path}
	if !ex.Verified {
		r.Warning = stfile.UnverifiedWarning(ex.Path)
	}
	return r, nil
}

// evalPipeline is the deterministic evaluation view of the run's policy.
func (lr *loadedRun) evalPipeline() (*augment.Pipeline, error) { return augment.New(lr.Aug) }

// cropFlipPipeline keeps only random resized crop and flip (paper B.5/B.6).
func (lr *loadedRun) cropFlipPipeline() (*augment.Pipeline, error) {
	return augment.New(lr.Aug.CropFlipOnly())
}

// labeledSet is a dataset whose labels have been mapped into a common
// class space.
type labeledSet struct {
	Spec  string
	DS    data.Dataset
	Label func(i int) int
}

func openData(spec, role string) (data.Dataset, error) {
	if spec == "" {
		return nil, fmt.Errorf("--%s SPEC is required (e.g. cifar10:PATH@%s or folder:PATH)", role, role)
	}
	ds, err := data.Open(spec)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", role, err)
	}
	if ds.Len() == 0 {
		return nil, fmt.Errorf("--%s %s: the dataset is empty", role, spec)
	}
	return ds, nil
}

// openTrainTest opens two labelled datasets and maps the test labels into
// the training set's classes (see matchClasses).
func openTrainTest(trainSpec, testSpec string) (tr, te labeledSet, classes int, names []string, err error) {
	trDS, err := openData(trainSpec, "train")
	if err != nil {
		return
	}
	teDS, err := openData(testSpec, "test")
	if err != nil {
		return
	}
	return matchClasses(trainSpec, trDS, testSpec, teDS)
}

// matchClasses maps the test labels into the training set's classes: by
// class name when both sets name their classes, else by number (then the
// class counts must agree). A test set may use only some of the training
// classes; test classes the training set does not have are an error, since
// no classifier trained on it can predict them.
func matchClasses(trainSpec string, trDS data.Dataset, testSpec string, teDS data.Dataset) (tr, te labeledSet, classes int, names []string, err error) {
	if trDS.NumClasses() == 0 {
		err = fmt.Errorf("--train %s has no labels (a flat folder?); evaluation needs class labels, e.g. class sub-folders", trainSpec)
		return
	}
	if teDS.NumClasses() == 0 {
		err = fmt.Errorf("--test %s has no labels (a flat folder?); evaluation needs class labels, e.g. class sub-folders", testSpec)
		return
	}
	classes, names = trDS.NumClasses(), trDS.ClassNames()
	tr = labeledSet{Spec: trainSpec, DS: trDS, Label: trDS.Label}
	te = labeledSet{Spec: testSpec, DS: teDS}
	trNames, teNames := trDS.ClassNames(), teDS.ClassNames()
	if len(trNames) == classes && len(teNames) == teDS.NumClasses() {
		idx := map[string]int{}
		for i, n := range trNames {
			idx[n] = i
		}
		mapping := make([]int, len(teNames))
		var unknown []string
		for i, n := range teNames {
			j, ok := idx[n]
			if !ok {
				unknown = append(unknown, n)
			}
			mapping[i] = j
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			what := "classes unknown to"
			if len(unknown) == 1 {
				what = "class unknown to"
			}
			if len(teNames) > classes {
				// More test classes than training classes: say so first,
				// it is the likelier mistake (wrong folder or dataset).
				err = fmt.Errorf("label count mismatch: --test %s has %d classes, --train %s has %d; %d test %s --train: %s (train classes: %s)",
					testSpec, len(teNames), trainSpec, classes, len(unknown), what, clip(unknown, 8), clip(trNames, 12))
				return
			}
			err = fmt.Errorf("--test %s has %d %s --train %s: %s (train classes: %s)",
				testSpec, len(unknown), what, trainSpec, clip(unknown, 8), clip(trNames, 12))
			return
		}
		te.Label = func(i int) int {
			l := teDS.Label(i)
			if l < 0 {
				return l
			}
			return mapping[l]
		}
		return
	}
	if teDS.NumClasses() != classes {
		err = fmt.Errorf("label count mismatch: --train %s has %d classes, --test %s has %d (and no class names to match them by)",
			trainSpec, classes, testSpec, teDS.NumClasses())
		return
	}
	te.Label = teDS.Label
	return
}

func clip(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(", ... (%d more)", len(s)-n)
}

// embedAll computes the encoder features (h) of a whole labelled set in
// memory, in dataset order. Unlabelled items are an error.
func (lr *loadedRun) embedAll(set labeledSet, f *runFlags, stderr io.Writer) ([]float32, []int, error) {
	tf, err := lr.evalPipeline()
	if err != nil {
		return nil, nil, err
	}
	loader, err := data.NewEvalLoader(set.DS, tf, f.batch, f.workers)
	if err != nil {
		return nil, nil, err
	}
	dim := lr.Model.Encoder.OutDim()
	feats := make([]float32, 0, set.DS.Len()*dim)
	labels := make([]int, 0, set.DS.Len())
	err = eval.Embed(lr.Tape, lr.Model.Encoder, loader, func(b *data.EvalBatch, h []float32) error {
		for _, i := range b.Indices {
			l := set.Label(i)
			if l < 0 {
				return fmt.Errorf("%s: image %s has no label", set.Spec, set.DS.Name(i))
			}
			labels = append(labels, l)
		}
		feats = append(feats, h...)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("embedding %s: %w", set.Spec, err)
	}
	fmt.Fprintf(stderr, "embedded %s: %d images, %d-d\n", set.Spec, len(labels), dim)
	return feats, labels, nil
}

// result is the final JSON line of knn, linear-eval and finetune.
type result struct {
	Command  string         `json:"command"`
	Top1     float64        `json:"top1"`
	Top5     float64        `json:"top5"`
	Protocol string         `json:"protocol"`
	Encoder  string         `json:"encoder"`
	Train    string         `json:"train"`
	Test     string         `json:"test"`
	NTrain   int            `json:"n_train"`
	NTest    int            `json:"n_test"`
	Classes  int            `json:"classes"`
	Extra    map[string]any `json:"details,omitempty"`
}

func printResult(cmd *cobra.Command, r result) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: top-1 %.2f%%, top-5 %.2f%% on %d test images (%s)\n", r.Command, 100*r.Top1, 100*r.Top5, r.NTest, r.Protocol)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return err
}

// writeJSON prints v as one JSON line on stdout.
func writeJSON(cmd *cobra.Command, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return err
}
