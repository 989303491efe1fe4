package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/stfile/stfiletest"
	"github.com/simclr-go/simclr/train"
)

var (
	ckRunOnce sync.Once
	ckRun     string
	ckRunErr  error
)

// threeCheckpointRun is the fixture's run again, checkpointed after each of
// its 3 steps: RUN/checkpoints/ckpt-0000000{1,2,3}.safetensors.
func threeCheckpointRun(t *testing.T) string {
	t.Helper()
	fx := tinyRun(t)
	ckRunOnce.Do(func() {
		cfg := train.DefaultConfig()
		cfg.Data, cfg.Out = fx.train, filepath.Join(fx.root, "run3")
		cfg.Width, cfg.Batch, cfg.Epochs = 0.125, 12, 1
		if ckRunErr = cfg.Augment.Set("size", "8"); ckRunErr != nil {
			return
		}
		cfg.WarmupEpochs, cfg.KNNEvery, cfg.Threads, cfg.Workers = 0, 0, 1, 2
		cfg.CheckpointEvery, cfg.KeepCheckpoints = 1, 5
		_, ckRunErr = train.Pretrain(context.Background(), cfg, io.Discard, train.Options{Backend: testBackend})
		ckRun = cfg.Out
	})
	if ckRunErr != nil {
		t.Fatalf("pretraining the three-checkpoint run: %v", ckRunErr)
	}
	return ckRun
}

func ckptPath(run string, step int) string {
	return filepath.Join(run, "checkpoints", fmt.Sprintf("ckpt-%08d.safetensors", step))
}

// TestDamagedCheckpointRefusedByCommands: with the newest checkpoint
// zeroed, bit-flipped, truncated or holding a NaN, embed, knn and
// pretrain --resume refuse the run, naming the file and listing the older
// checkpoints that verify, and write nothing; the older checkpoints work
// with --run PATH and --resume-from PATH.
func TestDamagedCheckpointRefusedByCommands(t *testing.T) {
	fx := tinyRun(t)
	src := threeCheckpointRun(t)
	for _, kind := range stfiletest.Kinds {
		t.Run(kind, func(t *testing.T) {
			run := filepath.Join(t.TempDir(), "run")
			stfiletest.CopyTree(t, src, run)
			bad := ckptPath(run, 3)
			stfiletest.Damage(t, bad, kind)
			listed := "older checkpoints that verify: " + ckptPath(run, 2) + ", " + ckptPath(run, 1)
			refused := func(what string, err error, stderr string) {
				t.Helper()
				if err == nil {
					t.Errorf("%s accepted the damaged checkpoint\n%s", what, stderr)
					return
				}
				for _, s := range []string{bad, listed} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s: message %q does not say %q", what, err, s)
					}
				}
			}
			out := filepath.Join(t.TempDir(), "h.npy")
			_, stderr, err := runCmd(t, newEmbedCmd, "embed", "--run", run, "--data", fx.test, "--out", out)
			refused("embed", err, stderr)
			if err != nil && !strings.Contains(err.Error(), "--run PATH") {
				t.Errorf("embed: %q does not say how to pick one", err)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("embed wrote %s from a damaged checkpoint", out)
			}
			_, stderr, err = runCmd(t, newKNNCmd, "knn", "--run", run, "--train", fx.train, "--test", fx.test, "--k", "5")
			refused("knn", err, stderr)
			_, stderr, err = runPretrain(t, "--out", run, "--resume")
			refused("pretrain --resume", err, stderr)
			if err != nil && !strings.Contains(err.Error(), "--resume-from PATH") {
				t.Errorf("pretrain --resume: %q does not say how to pick one", err)
			}

			// An older checkpoint, named explicitly, works.
			if _, stderr, err := runCmd(t, newEmbedCmd, "embed", "--run", ckptPath(run, 2), "--data", fx.test, "--out", out); err != nil {
				t.Errorf("embed --run %s: %v\n%s", ckptPath(run, 2), err, stderr)
			}
			sum, stderr, err := runPretrain(t, "--out", run, "--resume-from", ckptPath(run, 2))
			if err != nil {
				t.Fatalf("pretrain --resume-from: %v\n%s", err, stderr)
			}
			if sum["steps"] != 3.0 {
				t.Errorf("--resume-from: summary %v", sum)
			}
			if _, err := train.LoadRun(run); err != nil {
				t.Errorf("the continued run does not load: %v", err)
			}
		})
	}
}

// TestExportIsVerified: an exported encoder loads in embed and knn (giving
// the run's own embeddings), and each kind of damage is refused by embed;
// an export written before checksums loads with a one-line warning.
func TestExportIsVerified(t *testing.T) {
	fx := tinyRun(t)
	dir := t.TempDir()
	enc := filepath.Join(dir, "enc.safetensors")
	if _, stderr, err := runCmd(t, newExportCmd, "export", "--run", fx.run, "--out", enc); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	fromRun, fromExport := filepath.Join(dir, "run.npy"), filepath.Join(dir, "export.npy")
	if _, stderr, err := runCmd(t, newEmbedCmd, "embed", "--run", fx.run, "--data", fx.test, "--out", fromRun, "--threads", "1"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if _, stderr, err := runCmd(t, newEmbedCmd, "embed", "--run", enc, "--data", fx.test, "--out", fromExport, "--threads", "1"); err != nil {
		t.Fatalf("embed --run EXPORT: %v\n%s", err, stderr)
	}
	a, _ := os.ReadFile(fromRun)
	b, _ := os.ReadFile(fromExport)
	if len(a) == 0 || string(a) != string(b) {
		t.Errorf("the export's embeddings differ from the run's (%d and %d bytes)", len(a), len(b))
	}
	if _, _, err := runCmd(t, newEmbedCmd, "embed", "--run", enc, "--data", fx.test, "--out", fromExport, "--layer", "z"); err == nil || !strings.Contains(err.Error(), "no projection head") {
		t.Errorf("--layer z on an export: %v", err)
	}
	outR, _, err := runCmd(t, newKNNCmd, "knn", "--run", fx.run, "--train", fx.train, "--test", fx.test, "--k", "5", "--threads", "1")
	if err != nil {
		t.Fatal(err)
	}
	outE, stderr, err := runCmd(t, newKNNCmd, "knn", "--run", enc, "--train", fx.train, "--test", fx.test, "--k", "5", "--threads", "1")
	if err != nil {
		t.Fatalf("knn --run EXPORT: %v\n%s", err, stderr)
	}
	if r, e := lastJSON(t, outR), lastJSON(t, outE); r.Top1 != e.Top1 || r.Top5 != e.Top5 {
		t.Errorf("knn: run %v/%v, export %v/%v", r.Top1, r.Top5, e.Top1, e.Top5)
	}

	for _, kind := range stfiletest.Kinds {
		t.Run(kind, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "enc.safetensors")
			stfiletest.CopyTree(t, enc, bad)
			stfiletest.Damage(t, bad, kind)
			out := filepath.Join(t.TempDir(), "h.npy")
			_, stderr, err := runCmd(t, newEmbedCmd, "embed", "--run", bad, "--data", fx.test, "--out", out)
			if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("embed of a damaged export: %v\n%s", err, stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("embed wrote %s from a damaged export", out)
			}
		})
	}

	legacy := filepath.Join(dir, "legacy.safetensors")
	stfiletest.CopyTree(t, enc, legacy)
	stfiletest.StripChecksums(t, legacy)
	_, stderr, err = runCmd(t, newEmbedCmd, "embed", "--run", legacy, "--data", fx.test, "--out", filepath.Join(dir, "l.npy"))
	if err != nil {
		t.Fatalf("legacy export: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, legacy+" has no checksums") {
		t.Errorf("no warning for an unverifiable export:\n%s", stderr)
	}
}

// TestEvaluationBesideTraining: evaluation commands take no lock, so they
// run while a writer holds the run; a second writer is refused.
func TestEvaluationBesideTraining(t *testing.T) {
	fx := tinyRun(t)
	run := filepath.Join(t.TempDir(), "run")
	stfiletest.CopyTree(t, fx.run, run)
	l, err := train.LockRun(run)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, stderr, err := runCmd(t, newEmbedCmd, "embed", "--run", run, "--data", fx.test, "--out", filepath.Join(t.TempDir(), "h.npy")); err != nil {
		t.Errorf("embed beside a writer: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCmd(t, newKNNCmd, "knn", "--run", run, "--train", fx.train, "--test", fx.test, "--k", "5"); err != nil {
		t.Errorf("knn beside a writer: %v\n%s", err, stderr)
	}
	_, _, err = runPretrain(t, "--config", filepath.Join(run, "config.yaml"), "--out", run, "--resume")
	if !errors.Is(err, train.ErrRunLocked) || !strings.Contains(err.Error(), run) {
		t.Errorf("pretrain --resume beside a writer: %v", err)
	}
}
