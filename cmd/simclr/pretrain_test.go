package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writePretrainData writes n random CIFAR-10 binary records and returns
// the data spec.
func writePretrainData(t *testing.T, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	b := make([]byte, n*3073)
	for i := range n {
		b[i*3073] = byte(i % 3)
		for j := 1; j < 3073; j++ {
			b[i*3073+j] = byte(rng.IntN(256))
		}
	}
	path := filepath.Join(t.TempDir(), "data_batch_1.bin")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return "cifar10:" + path
}

func runPretrain(t *testing.T, args ...string) (map[string]any, string, error) {
	t.Helper()
	cmd := newPretrainCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		return nil, errb.String(), err
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("stdout has %d lines, want one JSON summary:\n%s", len(lines), out.String())
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &sum); err != nil {
		t.Fatalf("summary %q: %v", lines[0], err)
	}
	return sum, errb.String(), nil
}

func TestPretrainCommand(t *testing.T) {
	spec := writePretrainData(t, 12)
	out := filepath.Join(t.TempDir(), "run")
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("width: 0.125\nbatch: 4\nimage_size: 8\nknn_k: 3\nworkers: 1\n"), 0o644)
	sum, log, err := runPretrain(t, "--data", spec, "--out", out, "--config", cfgFile,
		"--epochs", "1", "--warmup-epochs", "0", "--optimizer", "sgd", "--lr", "0.1", "--lr-scaling", "none", "--knn-every", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	for _, k := range []string{"steps", "epochs", "final_loss", "knn_top1", "knn_top1_init", "wall_s", "images_per_s"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary lacks %s: %v", k, sum)
		}
	}
	if sum["steps"].(float64) != 3 {
		t.Errorf("steps %v, want 3", sum["steps"])
	}
	saved, _ := os.ReadFile(filepath.Join(out, "config.yaml"))
	for _, want := range []string{"width: 0.125", "optimizer: sgd", "lr_scaling: none", "batch: 4"} {
		if !bytes.Contains(saved, []byte(want)) {
			t.Errorf("config.yaml lacks %q:\n%s", want, saved)
		}
	}

	// --resume alone takes the run's config.yaml as the base.
	sum, log, err = runPretrain(t, "--out", out, "--resume")
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, log)
	}
	if sum["steps"].(float64) != 3 || !strings.Contains(log, "already complete") {
		t.Errorf("resume of a complete run: %v\n%s", sum, log)
	}

	// Bad input: unknown YAML key, bad flag value.
	os.WriteFile(cfgFile, []byte("widht: 0.5\n"), 0o644)
	if _, _, err := runPretrain(t, "--out", t.TempDir(), "--config", cfgFile); err == nil || !strings.Contains(err.Error(), "widht") {
		t.Errorf("unknown key: %v", err)
	}
	if _, _, err := runPretrain(t, "--out", t.TempDir(), "--optimizer", "rmsprop"); err == nil || !strings.Contains(err.Error(), "optimizer") {
		t.Errorf("bad optimizer: %v", err)
	}
	if _, _, err := runPretrain(t, "--epochs", "1"); err == nil || !strings.Contains(err.Error(), "--out") {
		t.Errorf("missing --out: %v", err)
	}
}
