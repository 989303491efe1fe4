package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/dist"
	"github.com/simclr-go/simclr/engine"
)

func TestBenchTiny(t *testing.T) {
	for _, mode := range []string{"train", "embed"} {
		o := benchOpts{Arch: "resnet18", Stem: "cifar", Head: "v1", Mode: mode, Width: 0.125, Temperature: 0.5,
			Batch: 4, Steps: 3, Warmup: 1, Size: 8, BN: "global"}
		r, err := runBench(o, engine.Reference(), dist.Single())
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

// The data-parallel bench over 2 in-process ranks: the global batch is
// split, the first step's loss is the one-process loss, and the
// communication time and every rank's memory are reported.
func TestBenchRanks(t *testing.T) {
	o := benchOpts{Arch: "resnet18", Stem: "cifar", Head: "v1", Mode: "train", Width: 0.125, Temperature: 0.5,
		Batch: 4, Steps: 1, Warmup: 0, Size: 8, BN: "global"}
	one, err := runBench(o, engine.Reference(), dist.Single())
	if err != nil {
		t.Fatal(err)
	}
	cs := dist.InProc(2)
	res := make([]benchResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[r], errs[r] = runBench(o, engine.Reference(), cs[r])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if r.WorldSize != 2 || r.ViewsPerStep != 8 || !(r.CommMsPerStep > 0) || len(r.PeakRSSRanks) != 2 || r.BN != "global" {
		t.Errorf("2 ranks: %+v", r)
	}
	if math.Abs(r.LastLoss-one.LastLoss) > 1e-4 {
		t.Errorf("2 ranks: loss %v, one process %v", r.LastLoss, one.LastLoss)
	}
	o.Batch = 5
	if _, err := runBench(o, engine.Reference(), dist.InProc(2)[0]); err == nil || !strings.Contains(err.Error(), "not a multiple of the 2 processes") {
		t.Errorf("odd batch over 2 ranks: %v", err)
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

// TestBenchMethod: --method picks the training method by name; supcon's
// synthetic labels give it a loss of its own, an unknown name is refused.
func TestBenchMethod(t *testing.T) {
	loss := map[string]float64{}
	for _, m := range []string{"simclr", "supcon"} {
		o := benchOpts{Arch: "resnet18", Stem: "cifar", Head: "v1", Mode: "train", Width: 0.125, Temperature: 0.5,
			Batch: 12, Steps: 1, Warmup: 0, Size: 8, Method: m, BN: "global"}
		r, err := runBench(o, engine.Reference(), dist.Single())
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if r.Method != m {
			t.Errorf("result names method %q, want %q", r.Method, m)
		}
		loss[m] = r.LastLoss
	}
	if loss["simclr"] == loss["supcon"] {
		t.Errorf("simclr and supcon gave the same loss %v", loss["simclr"])
	}
	cmd := newBenchCmd()
	cmd.SetArgs([]string{"--method", "byol", "--backend", "reference"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `--method: method "byol": want one of simclr|supcon`) {
		t.Errorf("unknown method: %v", err)
	}
}
