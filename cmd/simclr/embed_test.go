package main

import (
	"bufio"
	"encoding/csv"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/eval"
)

func TestEmbedNPYMatchesFeatures(t *testing.T) {
	fx := tinyRun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "h.npy")
	plot := filepath.Join(dir, "map.png")
	// A batch size that does not divide the 18 test images.
	_, stderr, err := runCmd(t, newEmbedCmd, "embed", "--run", fx.run, "--data", fx.test, "--out", out, "--eval-batch", "5", "--tsne", plot)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	h, got, err := eval.ReadNPYFloat32(bufio.NewReader(f))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	want, labels, dim := features(t, fx.run, fx.test)
	if len(h.Shape) != 2 || h.Shape[0] != 18 || h.Shape[1] != dim {
		t.Fatalf("shape %v, want [18 %d]", h.Shape, dim)
	}
	for i := range want {
		if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("value %d: %v, independent features %v", i, got[i], want[i])
		}
	}
	lab, _ := os.ReadFile(filepath.Join(dir, "h.labels.txt"))
	names, _ := os.ReadFile(filepath.Join(dir, "h.names.txt"))
	ls := strings.Fields(string(lab))
	ns := strings.Split(strings.TrimSpace(string(names)), "\n")
	if len(ls) != 18 || len(ns) != 18 {
		t.Fatalf("%d labels, %d names", len(ls), len(ns))
	}
	for i, l := range ls {
		if l != strconv.Itoa(labels[i]) {
			t.Fatalf("label %d: %s, want %d", i, l, labels[i])
		}
	}
	if !strings.HasSuffix(ns[0], filepath.Join("blue", "blue_000.png")) {
		t.Errorf("first name %q: want the first file in dataset order", ns[0])
	}
	pf, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(pf); err != nil {
		t.Errorf("t-SNE plot is not a PNG: %v", err)
	}
	pf.Close()

	// numpy reads it too, when available.
	if _, err := os.Stat("/usr/bin/python3"); err == nil && exec.Command("/usr/bin/python3", "-c", "import numpy").Run() == nil {
		o, err := exec.Command("/usr/bin/python3", "-c", "import numpy,sys; a=numpy.load(sys.argv[1]); print(a.shape, a.dtype, float(a[3,1]))", out).CombinedOutput()
		if err != nil {
			t.Fatalf("numpy.load: %v\n%s", err, o)
		}
		wantS := "(18, " + strconv.Itoa(dim) + ") float32 " + strconv.FormatFloat(float64(want[3*dim+1]), 'g', -1, 32)
		if gotS := strings.TrimSpace(string(o)); !strings.HasPrefix(gotS, "(18, "+strconv.Itoa(dim)+") float32") {
			t.Errorf("numpy sees %q, want %q", gotS, wantS)
		}
	}
}

func TestEmbedCSVLayerZ(t *testing.T) {
	fx := tinyRun(t)
	out := filepath.Join(t.TempDir(), "z.csv")
	plot := filepath.Join(t.TempDir(), "pca.png")
	_, stderr, err := runCmd(t, newEmbedCmd, "embed", "--run", fx.run, "--data", fx.test, "--out", out, "--layer", "z", "--tsne", plot, "--projection", "pca")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	f, _ := os.Open(out)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// 128-d z (the default head), plus index, name, label, class.
	if len(recs) != 19 || len(recs[0]) != 4+128 || recs[1][3] != "blue" {
		t.Errorf("%d rows of %d columns; first row %v", len(recs), len(recs[0]), recs[1][:4])
	}
	if _, err := os.Stat(plot); err != nil {
		t.Error(err)
	}
}

func TestEmbedBadInput(t *testing.T) {
	fx := tinyRun(t)
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"embed", "--run", fx.run, "--data", fx.test, "--out", filepath.Join(dir, "x.parquet")}, "x.parquet"},
		{[]string{"embed", "--run", fx.run, "--data", fx.test, "--out", filepath.Join(dir, "x.npy"), "--layer", "y"}, "--layer"},
		{[]string{"embed", "--run", fx.run, "--data", fx.test}, "--out"},
		{[]string{"embed", "--run", dir, "--data", fx.test, "--out", filepath.Join(dir, "x.npy")}, "checkpoint"},
	}
	for _, c := range cases {
		if _, _, err := runCmd(t, newEmbedCmd, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one mentioning %q", c.args[1:], err, c.want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "x*")); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
}
