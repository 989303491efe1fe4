package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

func TestBenchTiny(t *testing.T) {
	for _, mode := range []string{"train", "embed"} {
		o := benchOpts{Arch: "resnet18", Stem: "cifar", Head: "v1", Mode: mode, Width: 0.125, Temperature: 0.5,
			Batch: 4, Steps: 3, Warmup: 1, Size: 8}
		r, err := runBench(o, engine.Reference())
		if err != nil {
			t.Fatal(err)
		}
		views := 4
		if mode == "train" {
			views = 8
		}
		if r.ViewsPerStep != views || r.Backend != "reference" || !(r.MsPerStep > 0) || !(r.PeakRSSMiB > 0) {
			t.Errorf("%s: %+v", mode, r)
		}
		// images/s and ms/step describe the same median step.
		if got := r.ImagesPerS * r.MsPerStep / 1000; math.Abs(got-4) > 0.1 {
			t.Errorf("%s: images_per_s x ms_per_step = %v images, want 4", mode, got)
		}
		mult := 1.0
		if mode == "train" {
			mult = 3
		}
		if want := mult * r.FwdGFLOPView * float64(views); math.Abs(r.GFLOPPerStep-want) > 0.01+1e-3*want {
			t.Errorf("%s: gflop_per_step %v, want %v", mode, r.GFLOPPerStep, want)
		}
	}
}

func TestBenchCommandJSON(t *testing.T) {
	cmd := newBenchCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--width", "0.125", "--batch", "2", "--steps", "1", "--warmup", "0", "--image-size", "8", "--backend", "reference"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &m); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	for _, k := range []string{"images_per_s", "ms_per_step", "peak_rss_mib", "gflops", "backend"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s in %v", k, m)
		}
	}
	cmd = newBenchCmd()
	cmd.SetArgs([]string{"--mode", "infer"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--mode") {
		t.Errorf("bad mode: %v", err)
	}
}
