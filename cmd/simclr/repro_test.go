package main

// Reproducibility tests (issue 9) on real simclr processes: the test binary
// re-executes itself as `simclr` (childEnv), so that a run can be killed
// with SIGKILL and each run times its own kernels, as separate processes do.

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simclr-go/simclr/engine/dnnl"
	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/train"
)

// childEnv makes the test binary run the simclr command line in its
// arguments instead of the tests (see TestMain).
const childEnv = "SIMCLR_TEST_AS_SIMCLR"

// runAsSimclr is the test binary's main when started by startSimclr.
func runAsSimclr() {
	if os.Getenv(childEnv) != "1" {
		return
	}
	rootCmd.SetArgs(os.Args[1:])
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "simclr:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startSimclr starts `simclr args...` as a child process; its stderr goes
// to errOut.
func startSimclr(t *testing.T, errOut *strings.Builder, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1", "OMP_WAIT_POLICY=passive")
	cmd.Stderr = &limitedWriter{b: errOut}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// limitedWriter keeps the last 64 KiB a child wrote (for failure messages).
type limitedWriter struct{ b *strings.Builder }

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.b.Len() > 64<<10 {
		s := w.b.String()
		w.b.Reset()
		w.b.WriteString(s[len(s)-32<<10:])
	}
	return w.b.Write(p)
}

func runSimclr(t *testing.T, args ...string) {
	t.Helper()
	var errOut strings.Builder
	if err := startSimclr(t, &errOut, args...).Wait(); err != nil {
		t.Fatalf("simclr %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
}

// reproArgs is a pretraining run big enough that kernels are chosen by
// timing on every CPU (ResNet-18 x0.25 on 32 px views, batch 24: its 3x3
// convolutions of 32+ channels are worth over 0.2 GFLOP a call, and every
// batch norm on 2 threads has two plans), small enough for a test: 96
// images, 4 steps an epoch, 3 epochs, a checkpoint every step, the kNN
// monitor every epoch.
func reproArgs(spec, out string, extra ...string) []string {
	return append([]string{"pretrain", "--data", spec, "--out", out,
		"--width", "0.25", "--image-size", "32", "--batch", "24", "--epochs", "3",
		"--warmup-epochs", "1", "--lr", "1", "--log-every", "1", "--checkpoint-every", "1",
		"--keep-checkpoints", "2", "--knn-every", "1", "--knn-k", "5", "--threads", "2", "--workers", "2"}, extra...)
}

func needDNNL(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without oneDNN: the reference backend computes the same bits in every process")
	}
	if testing.Short() {
		t.Skip("runs several training processes")
	}
}

// sameRun checks that run got logged exactly the metrics of run want (every
// loss, contrastive accuracy, learning rate and kNN accuracy, bit for bit)
// and ended with the same weights.
func sameRun(t *testing.T, want, got string) {
	t.Helper()
	key := func(r train.Record) string { return fmt.Sprintf("%s %d/%d", r.Type, r.Epoch, r.Step) }
	bits := func(p *float64) uint64 {
		if p == nil {
			return 1 // not a float64's bits of any logged value
		}
		return math.Float64bits(*p)
	}
	ra, err := train.ReadMetrics(filepath.Join(want, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := train.ReadMetrics(filepath.Join(got, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ra) != len(rb) || len(ra) == 0 {
		t.Fatalf("%d metric records in %s, %d in %s", len(ra), want, len(rb), got)
	}
	for i := range ra {
		a, b := ra[i], rb[i]
		if key(a) != key(b) {
			t.Fatalf("record %d: %s vs %s", i, key(a), key(b))
		}
		for _, f := range []struct {
			name string
			a, b *float64
		}{{"loss", a.Loss, b.Loss}, {"contrastive_acc", a.ContrastiveAcc, b.ContrastiveAcc}, {"lr", a.LR, b.LR}, {"knn_top1", a.KNNTop1, b.KNNTop1}, {"knn_top5", a.KNNTop5, b.KNNTop5}} {
			if bits(f.a) != bits(f.b) {
				t.Errorf("%s %s: %v in %s, %v in %s", key(a), f.name, deref(f.b), got, deref(f.a), want)
			}
		}
	}
	wa, err := train.LoadRun(want)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := train.LoadRun(got)
	if err != nil {
		t.Fatal(err)
	}
	type named struct {
		name string
		data []float32
	}
	tensors := func(m *nn.Model) (ts []named) {
		for _, p := range m.Params() {
			ts = append(ts, named{p.Name, p.T.Data()})
		}
		for _, b := range m.Buffers() {
			ts = append(ts, named{b.Name, b.T.Data()})
		}
		return ts
	}
	pa, pb := tensors(wa.Model), tensors(wb.Model)
	for i := range pa {
		da, db := pa[i].data, pb[i].data
		for j := range da {
			if math.Float32bits(da[j]) != math.Float32bits(db[j]) {
				t.Errorf("final %s[%d]: %v in %s, %v in %s", pa[i].name, j, db[j], got, da[j], want)
				break
			}
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// Two fresh --deterministic runs, each its own process, are identical.
func TestDeterministicRunsBitIdentical(t *testing.T) {
	needDNNL(t)
	spec := writePretrainData(t, 96)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	runSimclr(t, reproArgs(spec, a, "--deterministic")...)
	runSimclr(t, reproArgs(spec, b, "--deterministic")...)
	sameRun(t, a, b)
	cfg := train.DefaultConfig()
	if err := cfg.LoadConfigFile(filepath.Join(a, "config.yaml")); err != nil || !cfg.Deterministic {
		t.Errorf("config.yaml does not record deterministic: true (%v)", err)
	}
}

// waitForStep polls a run's metrics.jsonl until it has logged step n (or
// the process ended).
func waitForStep(t *testing.T, dir string, n int, done <-chan error) bool {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return false
		default:
		}
		if recs, err := train.ReadMetrics(filepath.Join(dir, "metrics.jsonl")); err == nil {
			for _, r := range recs {
				if r.Type == "step" && r.Step >= n {
					return true
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("run %s did not reach step %d in 2 minutes", dir, n)
	return false
}

func waitChan(cmd *exec.Cmd) <-chan error {
	c := make(chan error, 1)
	go func() { c <- cmd.Wait() }()
	return c
}

// A default run (kernels chosen by timing) killed with SIGKILL in its
// second epoch and resumed ends exactly as an uninterrupted run with the
// same kernel choices: a fresh run seeded with the killed run's
// tuning.json. Without the saved choices the resumed process would time
// its kernels again and could choose others than the steps before the
// kill, and the two runs would part (by 2.6% in loss within an epoch in
// the issue).
func TestKilledRunResumesBitExact(t *testing.T) {
	needDNNL(t)
	spec := writePretrainData(t, 96)
	killed := filepath.Join(t.TempDir(), "killed")
	var errOut strings.Builder
	cmd := startSimclr(t, &errOut, reproArgs(spec, killed)...)
	done := waitChan(cmd)
	if !waitForStep(t, killed, 6, done) {
		t.Fatalf("the run ended before it could be killed:\n%s", errOut.String())
	}
	cmd.Process.Kill()
	<-done
	runSimclr(t, reproArgs(spec, killed, "--resume")...)

	straight := filepath.Join(t.TempDir(), "straight")
	os.MkdirAll(straight, 0o755)
	tn, err := os.ReadFile(filepath.Join(killed, train.TuningFile))
	if err != nil {
		t.Fatalf("the killed run saved no kernel choices: %v", err)
	}
	os.WriteFile(filepath.Join(straight, train.TuningFile), tn, 0o644)
	runSimclr(t, reproArgs(spec, straight)...)
	sameRun(t, straight, killed)
}

// TestKillLoopResumesBitExact kills a run with SIGKILL again and again, at
// random moments and while a checkpoint is being written, and resumes it
// each time. After every kill each checkpoint file in the run loads; the
// run finally logs exactly what an uninterrupted run with the same kernel
// choices logs.
func TestKillLoopResumesBitExact(t *testing.T) {
	needDNNL(t)
	spec := writePretrainData(t, 96)
	ref := filepath.Join(t.TempDir(), "ref")
	runSimclr(t, reproArgs(spec, ref)...)
	tn, err := os.ReadFile(filepath.Join(ref, train.TuningFile))
	if err != nil {
		t.Fatal(err)
	}

	run := filepath.Join(t.TempDir(), "run")
	ckdir := filepath.Join(run, "checkpoints")
	os.MkdirAll(run, 0o755)
	os.WriteFile(filepath.Join(run, train.TuningFile), tn, 0o644) // the same choices as ref
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	midWrite, kills := 0, 0
	for attempt := 0; ; attempt++ {
		args := reproArgs(spec, run)
		if _, err := train.LatestCheckpoint(run); err == nil {
			args = append(args, "--resume")
		}
		if attempt == 8 { // enough: let it finish
			runSimclr(t, args...)
			break
		}
		var errOut strings.Builder
		cmd := startSimclr(t, &errOut, args...)
		done := waitChan(cmd)
		var exited bool
		var exitErr error
		if attempt%2 == 0 {
			// Kill as soon as a checkpoint is being written: its
			// temporary file exists and has not been renamed yet.
			exited, exitErr = killWhen(cmd, done, func() bool {
				tmps, _ := filepath.Glob(filepath.Join(ckdir, ".ckpt-*.tmp"))
				return len(tmps) > 0
			})
		} else {
			delay := time.Duration(200+rng.IntN(2500)) * time.Millisecond
			start := time.Now()
			exited, exitErr = killWhen(cmd, done, func() bool { return time.Since(start) > delay })
		}
		if exited {
			if exitErr != nil {
				t.Fatalf("attempt %d: %v\n%s", attempt, exitErr, errOut.String())
			}
			break // finished before the kill
		}
		kills++
		if tmps, _ := filepath.Glob(filepath.Join(ckdir, ".ckpt-*.tmp")); len(tmps) > 0 {
			midWrite++
		}
		// Whatever the kill interrupted, every checkpoint there is whole.
		paths, _ := filepath.Glob(filepath.Join(ckdir, "ckpt-*.safetensors"))
		for _, p := range paths {
			if _, err := train.LoadCheckpoint(p); err != nil {
				t.Fatalf("after kill %d: %v", kills, err)
			}
		}
	}
	t.Logf("%d kills, %d of them while a checkpoint was being written", kills, midWrite)
	if midWrite == 0 {
		t.Error("no kill landed during a checkpoint write")
	}
	sameRun(t, ref, run)
}

// killWhen sends SIGKILL to cmd once cond holds, polling every half
// millisecond; it reports whether the process ended first, and how.
func killWhen(cmd *exec.Cmd, done <-chan error, cond func() bool) (bool, error) {
	for {
		select {
		case err := <-done:
			return true, err
		default:
		}
		if cond() {
			cmd.Process.Kill()
			err := <-done
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) {
				return true, err // it had exited on its own
			}
			return false, nil
		}
		time.Sleep(500 * time.Microsecond)
	}
}
