package train

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// TestPlotFailureNeverMasksTheRun: with plots impossible to write (a file
// where RUNDIR/plots should be), training goes on past the epoch end with
// a warning, and a later NaN stop still reports ErrNonFinite (a plot error
// used to end the run at the first epoch end and replace its error).
func TestPlotFailureNeverMasksTheRun(t *testing.T) {
	spec := writeTinyCIFAR(t, t.TempDir(), 24, 3)
	cfg := tinyConfig(t, spec)
	cfg.KNNEvery = 0
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "plots"), []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	nb := &nanBackend{Backend: engine.Reference()}
	// 6 steps an epoch: the loss of step 9 (epoch 2) is NaN.
	sum, err, log := pretrain(t, cfg, Options{Backend: nb, AfterStep: func(step int, _ float64) error {
		nb.poisoned = step == 8
		return nil
	}})
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("got %v, want ErrNonFinite\n%s", err, log)
	}
	if sum.Steps != 8 {
		t.Errorf("summary says %d steps, want 8 (the run must go on after the plot failure)", sum.Steps)
	}
	if !strings.Contains(log, "warning: plots not updated") {
		t.Errorf("no plot warning in the log:\n%s", log)
	}
}
