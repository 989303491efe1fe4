package train

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/stfile/stfiletest"
)

// interruptedRun is a tiny run killed after step 9 (checkpoints at steps
// 4, 6 and 8), and the step losses of the same run left uninterrupted.
func interruptedRun(t *testing.T) (Config, map[int]float64) {
	t.Helper()
	spec := writeTinyCIFAR(t, t.TempDir(), 24, 11)
	cfg := tinyConfig(t, spec)
	cfg.KNNEvery = 0
	if _, err, log := pretrain(t, cfg, Options{}); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	want := stepLosses(t, cfg.Out)
	cfg.Out = filepath.Join(t.TempDir(), "run")
	pretrainKilledAt(t, cfg, Options{}, 9)
	if _, steps, _ := listCheckpoints(filepath.Join(cfg.Out, "checkpoints")); !slices.Equal(steps, []int{4, 6, 8}) {
		t.Fatalf("checkpoints at steps %v, want [4 6 8]", steps)
	}
	return cfg, want
}

// TestDamagedCheckpointRefused: a zeroed tensor, a flipped bit, a
// truncated file or a NaN weight in the newest checkpoint is refused by
// --resume and by LoadRun (every evaluation command), with a message that
// names the file and lists the older checkpoints that verify; --resume-from
// one of them continues the run exactly as if it had never stopped, and
// sets the damaged later checkpoint aside.
func TestDamagedCheckpointRefused(t *testing.T) {
	base, want := interruptedRun(t)
	for _, kind := range stfiletest.Kinds {
		t.Run(kind, func(t *testing.T) {
			cfg := base
			cfg.Out = filepath.Join(t.TempDir(), "run")
			stfiletest.CopyTree(t, base.Out, cfg.Out)
			ckdir := filepath.Join(cfg.Out, "checkpoints")
			bad := filepath.Join(ckdir, checkpointName(8))
			stfiletest.Damage(t, bad, kind)
			metricsBefore, _ := os.ReadFile(filepath.Join(cfg.Out, "metrics.jsonl"))

			cfg.Resume = true
			_, err, log := pretrain(t, cfg, Options{})
			if err == nil {
				t.Fatalf("--resume accepted the damaged checkpoint\n%s", log)
			}
			older := []string{filepath.Join(ckdir, checkpointName(6)), filepath.Join(ckdir, checkpointName(4))}
			msg := err.Error()
			for _, s := range []string{bad, "older checkpoints that verify: " + older[0] + ", " + older[1], "--resume-from"} {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not say %q", msg, s)
				}
			}
			if after, _ := os.ReadFile(filepath.Join(cfg.Out, "metrics.jsonl")); string(after) != string(metricsBefore) {
				t.Error("the refused resume changed metrics.jsonl")
			}
			var ce *CorruptCheckpointError
			if _, err := LoadRun(cfg.Out); !errors.As(err, &ce) || ce.Path != bad || !slices.Equal(ce.Valid, older) {
				t.Errorf("LoadRun: %v, want a CorruptCheckpointError for %s listing %v", err, bad, older)
			}

			cfg.Resume, cfg.ResumeFrom = false, older[0]
			sum, err, log := pretrain(t, cfg, Options{})
			if err != nil {
				t.Fatalf("--resume-from %s: %v\n%s", older[0], err, log)
			}
			if sum.Steps != 12 || !strings.Contains(log, "from step 6") {
				t.Errorf("--resume-from: %d steps\n%s", sum.Steps, log)
			}
			got := stepLosses(t, cfg.Out)
			if len(got) != len(want) {
				t.Fatalf("%d step losses, want %d", len(got), len(want))
			}
			for s, w := range want {
				if math.Float64bits(got[s]) != math.Float64bits(w) {
					t.Errorf("step %d: loss %v after --resume-from, %v uninterrupted", s, got[s], w)
				}
			}
			if _, err := os.Stat(filepath.Join(ckdir, supersededDir, checkpointName(8))); err != nil {
				t.Errorf("the damaged later checkpoint was not set aside: %v", err)
			}
			if _, err := LoadRun(cfg.Out); err != nil {
				t.Errorf("the continued run does not load: %v", err)
			}
		})
	}
}

// TestResumeFromIsValidated: --resume-from takes only a checkpoint of the
// same run, undamaged, with the same configuration.
func TestResumeFromIsValidated(t *testing.T) {
	cfg, _ := interruptedRun(t)
	ckdir := filepath.Join(cfg.Out, "checkpoints")
	elsewhere := filepath.Join(t.TempDir(), checkpointName(6))
	stfiletest.CopyTree(t, ckdir, filepath.Dir(elsewhere))
	damaged := filepath.Join(ckdir, checkpointName(4))
	stfiletest.Damage(t, damaged, stfiletest.FlippedBit)
	for from, want := range map[string]string{
		elsewhere:                               "not a checkpoint of the run",
		filepath.Join(cfg.Out, "config.yaml"):   "not a checkpoint file name",
		filepath.Join(ckdir, checkpointName(5)): "no such file",
		damaged:                                 "CRC-32C",
	} {
		c := cfg
		c.ResumeFrom = from
		if _, err, _ := pretrain(t, c, Options{}); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), from) {
			t.Errorf("--resume-from %s: got %v, want an error saying %q", from, err, want)
		}
	}
	c := cfg
	c.ResumeFrom, c.LR = filepath.Join(ckdir, checkpointName(6)), 0.5
	if _, err, _ := pretrain(t, c, Options{}); err == nil || !strings.Contains(err.Error(), "lr") {
		t.Errorf("--resume-from with another lr: %v", err)
	}
	if _, steps, _ := listCheckpoints(ckdir); !slices.Equal(steps, []int{4, 6, 8}) {
		t.Errorf("refused resumes changed the checkpoints: %v", steps)
	}
}

// TestLegacyCheckpointLoadsWithWarning: a checkpoint written before
// checksums loads, resumes, and says in one line that it cannot be
// verified.
func TestLegacyCheckpointLoadsWithWarning(t *testing.T) {
	cfg, _ := interruptedRun(t)
	path := filepath.Join(cfg.Out, "checkpoints", checkpointName(8))
	stfiletest.StripChecksums(t, path)
	r, err := LoadRun(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Warning, path) || !strings.Contains(r.Warning, "cannot be verified") || strings.Contains(r.Warning, "\n") {
		t.Errorf("warning %q", r.Warning)
	}
	cfg.Resume = true
	_, err, log := pretrain(t, cfg, Options{})
	if err != nil {
		t.Fatalf("resume from a legacy checkpoint: %v\n%s", err, log)
	}
	if !strings.Contains(log, r.Warning) {
		t.Errorf("resume did not warn:\n%s", log)
	}
}

// TestNaNStopNamesAVerifiedCheckpoint: when the run diverges, the "last
// good checkpoint" it names is one that verifies now, not a newer one that
// was damaged since it was written.
func TestNaNStopNamesAVerifiedCheckpoint(t *testing.T) {
	spec := writeTinyCIFAR(t, t.TempDir(), 24, 3)
	cfg := tinyConfig(t, spec)
	cfg.KNNEvery = 0
	nb := &nanBackend{Backend: engine.Reference()}
	ck8 := filepath.Join(cfg.Out, "checkpoints", checkpointName(8))
	_, err, log := pretrain(t, cfg, Options{Backend: nb, AfterStep: func(step int, _ float64) error {
		if step == 9 {
			stfiletest.Damage(t, ck8, stfiletest.Zeroed)
			nb.poisoned = true // the loss of step 10 is NaN
		}
		return nil
	}})
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("got %v, want ErrNonFinite\n%s", err, log)
	}
	if msg := err.Error(); !strings.Contains(msg, "last good checkpoint is "+filepath.Join(cfg.Out, "checkpoints", checkpointName(6))) {
		t.Errorf("message %q does not name the step-6 checkpoint", msg)
	}
}
