package train

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
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

// TestConfigIntegerKeysRejectFractions: batch: 16.7 used to run with 16
// and epochs: 1.9 with 1 epoch; every integer key now refuses a
// non-integer value, as its flag does, naming the file, line and key.
func TestConfigIntegerKeysRejectFractions(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ yaml, key string }{
		{"batch: 16.7\n", "batch"},
		{"lr: 0.1\nepochs: 1.9\n", "epochs"},
		{"seed: 1e3\n", "seed"},
		{"knn_k: 2.5\n", "knn_k"},
		{"threads: [1, 2]\n", "threads"},
		{"log_every: 10.0\n", "log_every"},
	} {
		path := writeFile(t, filepath.Join(dir, c.key+".yaml"), c.yaml)
		cfg := DefaultConfig()
		err := cfg.LoadConfigFile(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.key+":") || !strings.Contains(err.Error(), "not an integer") {
			t.Errorf("%q: error %v, want one naming %s, the key and 'not an integer'", c.yaml, err, path)
		}
	}
	// Integers (also hex and negative ones) and floats for float keys load.
	path := writeFile(t, filepath.Join(dir, "ok.yaml"), "batch: 16\nepochs: 0x3\nseed: -5\nlr: 1\nwidth: 0.5\n")
	cfg := DefaultConfig()
	if err := cfg.LoadConfigFile(path); err != nil {
		t.Fatal(err)
	}
	if cfg.Batch != 16 || cfg.Epochs != 3 || cfg.Seed != -5 || cfg.LR != 1 || cfg.Width != 0.5 {
		t.Errorf("loaded %+v", cfg)
	}
}

// TestCapThreads: above the CPU count, --threads is capped with a warning
// unless forced; 0 (all cores) and counts within the CPUs are kept.
func TestCapThreads(t *testing.T) {
	cpus := runtime.NumCPU()
	for _, c := range []struct {
		n     int
		force bool
		want  int
		warn  bool
	}{{0, false, 0, false}, {1, false, 1, false}, {cpus, false, cpus, false}, {1000, false, cpus, true}, {1000, true, 1000, false}} {
		var b strings.Builder
		if got := CapThreads(c.n, c.force, &b); got != c.want || (b.Len() > 0) != c.warn {
			t.Errorf("CapThreads(%d, %v) = %d, warning %q; want %d, warning %v", c.n, c.force, got, b.String(), c.want, c.warn)
		}
	}
	// The force key stays out of config.yaml (and the run's hash) when off.
	cfg := DefaultConfig()
	b, err := cfg.yamlBytes()
	if err != nil || strings.Contains(string(b), "threads_force") {
		t.Errorf("config.yaml has threads_force when off (%v):\n%s", err, b)
	}
}

// TestKNNMonitorSkipsTinyDataset: on a 3-image labelled folder the default
// monitor (every 5th image a query) has no queries; it used to stop the
// run with "empty memory bank or query set" before any step. It now turns
// itself off with one line saying why, and training goes on.
func TestKNNMonitorSkipsTinyDataset(t *testing.T) {
	root := t.TempDir()
	for i, class := range []string{"a", "a", "b"} {
		dir := filepath.Join(root, class)
		os.MkdirAll(dir, 0o755)
		m := image.NewRGBA(image.Rect(0, 0, 8, 8))
		for p := range m.Pix {
			m.Pix[p] = uint8(40*i + p)
		}
		var b bytes.Buffer
		if err := png.Encode(&b, m); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.png", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := tinyConfig(t, "folder:"+root)
	cfg.Batch, cfg.Epochs, cfg.WarmupEpochs = 2, 1, 0
	cfg.KNNEvery = DefaultConfig().KNNEvery
	sum, err, log := pretrain(t, cfg, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if sum.Steps != 1 || sum.KNNTop1 != nil {
		t.Errorf("summary %+v, want 1 step and no kNN accuracy", sum)
	}
	if n := strings.Count(log, "kNN monitor off"); n != 1 || !strings.Contains(log, "has 0") {
		t.Errorf("want one line saying the monitor is off and why:\n%s", log)
	}
}

// TestRunFilesRespectUmask: config.yaml, checkpoints and plots were 0600
// (written through os.CreateTemp) while metrics.jsonl followed the umask;
// every file of a run directory now has 0666 minus the umask.
func TestRunFilesRespectUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	spec := writeTinyCIFAR(t, t.TempDir(), 8, 1)
	cfg := tinyConfig(t, spec)
	cfg.Epochs, cfg.KNNEvery = 1, 0
	if _, err, log := pretrain(t, cfg, Options{}); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	n := 0
	filepath.WalkDir(cfg.Out, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v (%v), want 0644 under umask 022", p, st.Mode().Perm(), err)
		}
		return nil
	})
	if n < 6 { // config.yaml, metrics.jsonl, a checkpoint, 3 plots
		t.Errorf("only %d files in the run directory", n)
	}
}
