package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/nn"
)

// tinyConfig is a run that takes a few seconds on the reference backend:
// ResNet-18 x0.125 on 8 px views of 24 images, batch 4 (6 steps an epoch).
func tinyConfig(t *testing.T, spec string) Config {
	cfg := DefaultConfig()
	cfg.Data, cfg.Out = spec, filepath.Join(t.TempDir(), "run")
	cfg.Width, cfg.Batch, cfg.Epochs = 0.125, 4, 2
	mustSet(t, &cfg.Augment, "size", 8)
	cfg.WarmupEpochs = 1
	cfg.LR = 2 // lr 0.3*4/256 barely moves a tiny model; make steps count
	cfg.LogEvery, cfg.CheckpointEvery, cfg.KeepCheckpoints = 1, 4, 10
	cfg.KNNEvery, cfg.KNNK = 1, 5
	cfg.Workers = 2
	return cfg
}

func pretrain(t *testing.T, cfg Config, opts Options) (Summary, error, string) {
	t.Helper()
	if opts.Backend == nil {
		opts.Backend = engine.Reference()
	}
	var log bytes.Buffer
	sum, err := Pretrain(context.Background(), cfg, &log, opts)
	return sum, err, log.String()
}

func stepLosses(t *testing.T, dir string) map[int]float64 {
	t.Helper()
	recs, err := ReadMetrics(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]float64{}
	for _, r := range recs {
		if r.Type == "step" {
			if _, dup := m[r.Step]; dup {
				t.Errorf("step %d logged twice", r.Step)
			}
			m[r.Step] = *r.Loss
		}
	}
	return m
}

func TestPretrainEndToEnd(t *testing.T) {
	spec := writeTinyCIFAR(t, t.TempDir(), 24, 1)
	cfg := tinyConfig(t, spec)
	sum, err, log := pretrain(t, cfg, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if sum.Steps != 12 || sum.Epochs != 2 || sum.KNNTop1 == nil || sum.KNNTop1Init == nil || !(sum.ImagesPerS > 0) || !(sum.WallS > 0) {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(log, "kNN at init") || !strings.Contains(log, "epoch 2/2") {
		t.Errorf("progress output:\n%s", log)
	}

	// metrics.jsonl: every step, with the schedule's lr; epoch records with kNN.
	recs, err := ReadMetrics(filepath.Join(cfg.Out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	peak := cfg.LR * float64(cfg.Batch) / 256
	var steps, epochs int
	for _, r := range recs {
		switch r.Type {
		case "step":
			steps++
			if r.Loss == nil || r.LR == nil || r.ContrastiveAcc == nil || r.Epoch != (r.Step-1)/6+1 {
				t.Errorf("step record %+v", r)
				continue
			}
			// Independent schedule: linear warm-up over 6 steps, cosine over the other 6.
			s := float64(r.Step - 1)
			want := peak * s / 6
			if s >= 6 {
				want = peak * 0.5 * (1 + math.Cos(math.Pi*(s-6)/6))
			}
			if math.Abs(*r.LR-want) > 1e-12 {
				t.Errorf("step %d: lr %v, want %v", r.Step, *r.LR, want)
			}
		case "epoch":
			epochs++
			if r.KNNTop1 == nil || *r.KNNTop1 < 0 || *r.KNNTop1 > 1 {
				t.Errorf("epoch record without a valid kNN: %+v", r)
			}
		}
	}
	if steps != 12 || epochs != 3 {
		t.Errorf("%d step and %d epoch records, want 12 and 3 (init + 2)", steps, epochs)
	}

	for _, p := range []string{"loss.png", "lr.png", "knn.png"} {
		b, err := os.ReadFile(filepath.Join(cfg.Out, "plots", p))
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("plot %s: %v", p, err)
		}
	}

	// config.yaml is the resolved config and reloads strictly.
	var saved Config
	if err := saved.LoadConfigFile(filepath.Join(cfg.Out, "config.yaml")); err != nil {
		t.Fatal(err)
	}
	if saved.Stem != "cifar" || saved.Temperature != 0.5 || saved.HeadHidden != 64 || saved.Resume {
		t.Errorf("saved config not resolved: %+v", saved)
	}

	// Epoch-end checkpoints: 4, 6 (epoch end), 8, 12 (epoch end).
	_, ckSteps, _ := listCheckpoints(filepath.Join(cfg.Out, "checkpoints"))
	if want := []int{4, 6, 8, 12}; !slices.Equal(ckSteps, want) {
		t.Errorf("checkpoints at %v, want %v", ckSteps, want)
	}

	// LoadRun rebuilds the model with the trained weights.
	r, err := LoadRun(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Step != 12 || r.Epoch != 2 || r.Config.Width != 0.125 {
		t.Errorf("LoadRun: step %d epoch %d cfg %+v", r.Step, r.Epoch, r.Config)
	}
	fresh, _ := NewModel(r.Config)
	if sameParams(fresh, r.Model) {
		t.Error("loaded weights equal the initialisation: nothing trained or nothing loaded")
	}
	// Running statistics were trained and saved too.
	if rm := r.Model.Encoder.(*nn.ResNet).BN1.Stats.Mean.Data(); rm[0] == 0 {
		t.Errorf("BN running mean not restored: %v", rm)
	}

	// Starting again into the same directory is refused.
	if _, err, _ := pretrain(t, cfg, Options{}); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("second run into the same dir: %v", err)
	}
}

func sameParams(a, b *nn.Model) bool {
	pa, pb := a.Params(), b.Params()
	for i := range pa {
		da, db := pa[i].T.Data(), pb[i].T.Data()
		for j := range da {
			if math.Float32bits(da[j]) != math.Float32bits(db[j]) {
				return false
			}
		}
	}
	return true
}

var errKilled = errors.New("killed (test)")

// pretrainKilledAt runs cfg with opts and aborts it after the given step, as a
// crash would (no checkpoint is written for the abort).
func pretrainKilledAt(t *testing.T, cfg Config, opts Options, step int) {
	t.Helper()
	opts.AfterStep = func(s int, _ float64) error {
		if s == step {
			return errKilled
		}
		return nil
	}
	if _, err, _ := pretrain(t, cfg, opts); !errors.Is(err, errKilled) {
		t.Fatalf("kill at step %d: %v", step, err)
	}
}

// A run killed after step 5 (last checkpoint at step 4) and resumed, then
// interrupted by its context at step 9 and resumed again, must produce the
// same losses, bit for bit, as a run that was never interrupted, and end
// with identical weights and optimizer state.
func TestPretrainResumeIsExact(t *testing.T) {
	spec := writeTinyCIFAR(t, t.TempDir(), 24, 2)
	cfg := tinyConfig(t, spec)
	cfg.KNNEvery = 0 // not needed here; keeps the test short
	straight := cfg
	if _, err, log := pretrain(t, straight, Options{}); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	want := stepLosses(t, straight.Out)

	cfg.Out = filepath.Join(t.TempDir(), "run")
	pretrainKilledAt(t, cfg, Options{}, 5)
	// Step 5 was logged but is lost with the crash.
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Resume = true
	var log bytes.Buffer
	_, err := Pretrain(ctx, cfg, &log, Options{Backend: engine.Reference(), AfterStep: func(step int, _ float64) error {
		if step == 9 {
			cancel()
		}
		return nil
	}})
	if err == nil || !strings.Contains(err.Error(), "interrupted at step 9") {
		t.Fatalf("cancel: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "from step 4") {
		t.Errorf("first resume did not start at the step-4 checkpoint:\n%s", log.String())
	}
	sum, err, log2 := pretrain(t, cfg, Options{})
	if err != nil {
		t.Fatalf("second resume: %v\n%s", err, log2)
	}
	if !strings.Contains(log2, "from step 9") || sum.Steps != 12 {
		t.Errorf("second resume: steps %d\n%s", sum.Steps, log2)
	}

	got := stepLosses(t, cfg.Out)
	if len(got) != len(want) || len(want) != 12 {
		t.Fatalf("%d losses after resuming, %d straight, want 12", len(got), len(want))
	}
	for s, w := range want {
		if math.Float64bits(got[s]) != math.Float64bits(w) {
			t.Errorf("step %d: loss %v after resume, %v straight", s, got[s], w)
		}
	}
	a, err := readCheckpoint(filepath.Join(straight.Out, "checkpoints", checkpointName(12)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := readCheckpoint(filepath.Join(cfg.Out, "checkpoints", checkpointName(12)))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range a.Names {
		ta, tb := a.Tensors[n], b.Tensors[n]
		if len(ta.F32) != len(tb.F32) || len(ta.I64) != len(tb.I64) {
			t.Errorf("%s differs in size", n)
			continue
		}
		for i := range ta.F32 {
			if math.Float32bits(ta.F32[i]) != math.Float32bits(tb.F32[i]) {
				t.Errorf("%s[%d]: %v resumed, %v straight", n, i, tb.F32[i], ta.F32[i])
				break
			}
		}
		for i := range ta.I64 {
			if ta.I64[i] != tb.I64[i] {
				t.Errorf("%s: %v resumed, %v straight", n, tb.I64, ta.I64)
			}
		}
	}
	if a.Meta.EpochLossSum != b.Meta.EpochLossSum || len(a.Names) != len(b.Names) {
		t.Errorf("meta differs: %+v vs %+v", a.Meta, b.Meta)
	}
	ra, _ := ReadMetrics(filepath.Join(straight.Out, "metrics.jsonl"))
	rb, _ := ReadMetrics(filepath.Join(cfg.Out, "metrics.jsonl"))
	if len(ra) != len(rb) {
		t.Errorf("%d metric records straight, %d resumed", len(ra), len(rb))
	}
	for i := range min(len(ra), len(rb)) {
		if ra[i].Type == "epoch" && rb[i].Type == "epoch" && *ra[i].Loss != *rb[i].Loss {
			t.Errorf("epoch %d mean loss %v resumed, %v straight", ra[i].Epoch, *rb[i].Loss, *ra[i].Loss)
		}
	}

	// Resuming with a different trajectory is refused, naming the key.
	cfg.LR = 0.5
	if _, err, _ := pretrain(t, cfg, Options{}); err == nil || !strings.Contains(err.Error(), "lr") {
		t.Errorf("resume with another lr: %v", err)
	}
}

// nanBackend turns every matrix product into NaN once poisoned, as a
// diverging run would.
type nanBackend struct {
	engine.Backend
	poisoned bool
}

func (b *nanBackend) MatMul(c, a, x *engine.Tensor, ta, tb bool, alpha, beta float32) {
	b.Backend.MatMul(c, a, x, ta, tb, alpha, beta)
	if b.poisoned {
		c.Data()[0] = float32(math.NaN())
	}
}

func TestPretrainStopsOnNaN(t *testing.T) {
	spec := writeTinyCIFAR(t, t.TempDir(), 24, 3)
	cfg := tinyConfig(t, spec)
	cfg.KNNEvery = 0
	nb := &nanBackend{Backend: engine.Reference()}
	// Poisoned after step 5: the loss of step 6 is NaN; the last checkpoint
	// is step 4's.
	sum, err, log := pretrain(t, cfg, Options{Backend: nb, AfterStep: func(step int, _ float64) error {
		nb.poisoned = step == 5
		return nil
	}})
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("got %v, want ErrNonFinite\n%s", err, log)
	}
	for _, want := range []string{"loss is NaN at step 6", "ckpt-00000004.safetensors"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	if sum.Steps != 5 {
		t.Errorf("summary says %d steps, want 5", sum.Steps)
	}
	_, steps, _ := listCheckpoints(filepath.Join(cfg.Out, "checkpoints"))
	if !slices.Equal(steps, []int{4}) {
		t.Errorf("checkpoints %v, want [4]", steps)
	}
	if _, err := LoadRun(cfg.Out); err != nil {
		t.Errorf("the last good checkpoint does not load: %v", err)
	}
}

func TestLoadRunErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := LoadRun(empty); err == nil || !strings.Contains(err.Error(), "no checkpoints") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := LoadRun(filepath.Join(empty, "missing")); err == nil {
		t.Error("missing dir accepted")
	}

	cfg := DefaultConfig()
	cfg.Width, cfg.Out = 0.125, "x"
	if _, err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	ckdir := filepath.Join(run, "checkpoints")

	// Tensors of a x0.125 model under a config that says x0.25.
	wide := cfg
	wide.Width = 0.25
	y, _ := wide.yamlBytes()
	if _, err := writeCheckpoint(ckdir, modelTensors(m), Meta{Step: 3}, y); err != nil {
		t.Fatal(err)
	}
	_, err = LoadRun(run)
	if err == nil || !strings.Contains(err.Error(), "encoder.conv1.weight") || !strings.Contains(err.Error(), "[8 3 3 3]") || !strings.Contains(err.Error(), "[16 3 3 3]") {
		t.Errorf("shape mismatch: %v", err)
	}

	// A missing tensor.
	y, _ = cfg.yamlBytes()
	ts := modelTensors(m)[1:]
	if _, err := writeCheckpoint(ckdir, ts, Meta{Step: 4}, y); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRun(run); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing tensor: %v", err)
	}

	// A corrupt latest checkpoint.
	os.WriteFile(filepath.Join(ckdir, checkpointName(5)), []byte("\x10\x00\x00\x00\x00\x00\x00\x00{"), 0o644)
	if _, err := LoadRun(run); err == nil || !strings.Contains(err.Error(), "ckpt-00000005") {
		t.Errorf("corrupt checkpoint: %v", err)
	}

	// A good one loads bit for bit, running statistics included.
	m.Encoder.(*nn.ResNet).BN1.Stats.Mean.Data()[0] = 0.25
	m.Encoder.(*nn.ResNet).BN1.Tracked = 17
	if _, err := writeCheckpoint(ckdir, modelTensors(m), Meta{Step: 6, Epoch: 1}, y); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRun(run)
	if err != nil {
		t.Fatal(err)
	}
	if !sameParams(m, r.Model) || r.Model.Encoder.(*nn.ResNet).BN1.Stats.Mean.Data()[0] != 0.25 || r.Model.Encoder.(*nn.ResNet).BN1.Tracked != 17 || r.Step != 6 || r.Epoch != 1 {
		t.Error("loaded model differs from the saved one")
	}
}
