package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/eval"
)

func TestNeighborsCommand(t *testing.T) {
	fx := tinyRun(t)
	out := filepath.Join(t.TempDir(), "grid.png")
	stdout, stderr, err := runCmd(t, newNeighborsCmd, "neighbors", "--run", fx.run, "--data", fx.test, "--query", "3", "--k", "4", "--cell", "16", "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var rep struct {
		Queries []struct {
			Query     int   `json:"query"`
			Neighbors []int `json:"neighbors"`
		} `json:"queries"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &rep); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if len(rep.Queries) != 3 {
		t.Fatalf("%d queries", len(rep.Queries))
	}
	feats, _, dim := features(t, fx.run, fx.test)
	for _, q := range rep.Queries {
		want, err := eval.Nearest(feats, 18, dim, []int{q.Query}, 4)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.Neighbors, want[0]) {
			t.Errorf("query %d: neighbours %v, from independent features %v", q.Query, q.Neighbors, want[0])
		}
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 5 columns (query + 4) and 3 rows of 16+2*2 px cells with 4 px gaps.
	if b := img.Bounds(); b.Dx() != 4+5*24 || b.Dy() != 4+3*24 {
		t.Errorf("grid is %dx%d", b.Dx(), b.Dy())
	}
	if _, _, err := runCmd(t, newNeighborsCmd, "neighbors", "--run", fx.run, "--data", fx.test, "--k", "18", "--out", out); err == nil || !strings.Contains(err.Error(), "--k") {
		t.Errorf("k too large: %v", err)
	}
}

func TestPlotCommand(t *testing.T) {
	fx := tinyRun(t)
	os.RemoveAll(filepath.Join(fx.run, "plots"))
	if _, stderr, err := runCmd(t, newPlotCmd, "plot", "--run", fx.run); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(fx.run, "plots", "loss.png")); err != nil {
		t.Error(err)
	}
	if _, _, err := runCmd(t, newPlotCmd, "plot", "--run", t.TempDir()); err == nil || !strings.Contains(err.Error(), "metrics.jsonl") {
		t.Errorf("run without metrics: %v", err)
	}
}
