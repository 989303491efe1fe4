package main

import (
	"math"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/train"
)

// features computes h for a spec through train.LoadRun and eval.Features,
// a path independent of the commands' own embedding code.
func features(t *testing.T, run, spec string) ([]float32, []int, int) {
	t.Helper()
	r, err := train.LoadRun(run)
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.Config
	acfg, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	tf, err := augment.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	loader, err := data.NewEvalLoader(ds, tf, 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	x, y, err := eval.Features(engine.NewTape(engine.Reference()), r.Model.Encoder, loader)
	if err != nil {
		t.Fatal(err)
	}
	return x, y, r.Model.Encoder.OutDim()
}

func TestKNNCommand(t *testing.T) {
	fx := tinyRun(t)
	out, stderr, err := runCmd(t, newKNNCmd, "knn", "--run", fx.run, "--train", fx.train, "--test", fx.test, "--k", "5", "--tau", "0.1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	r := lastJSON(t, out)
	if r.NTrain != 36 || r.NTest != 18 || r.Classes != 3 || !strings.Contains(r.Protocol, "k=5") {
		t.Errorf("result %+v", r)
	}
	trX, trY, dim := features(t, fx.run, fx.train)
	teX, teY, _ := features(t, fx.run, fx.test)
	top1, top5, err := eval.KNN(trX, trY, teX, teY, dim, 5, 0.1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(top1-r.Top1) > 1e-9 || math.Abs(top5-r.Top5) > 1e-9 {
		t.Errorf("command top1/top5 %v/%v, direct %v/%v", r.Top1, r.Top5, top1, top5)
	}
	if !strings.Contains(stderr, "knn: top-1") {
		t.Errorf("no human summary on stderr:\n%s", stderr)
	}

	out, stderr, err = runCmd(t, newKNNCmd, "knn", "--run", fx.run, "--train", fx.train, "--test", fx.test, "--k", "5", "--baseline", "random-init")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if b := lastJSON(t, out); !strings.Contains(b.Encoder, "random-init") {
		t.Errorf("baseline encoder %q", b.Encoder)
	}
}

func TestEvalCommandsBadInput(t *testing.T) {
	fx := tinyRun(t)
	empty := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no --run", []string{"knn", "--train", fx.train, "--test", fx.test}, "--run"},
		{"run without checkpoint", []string{"knn", "--run", empty, "--train", fx.train, "--test", fx.test}, empty},
		{"unknown test classes", []string{"knn", "--run", fx.run, "--train", fx.train, "--test", fx.otherTest}, "purple"},
		{"bad baseline", []string{"knn", "--run", fx.run, "--train", fx.train, "--test", fx.test, "--baseline", "imagenet"}, "random-init"},
		{"missing test", []string{"knn", "--run", fx.run, "--train", fx.train}, "--test"},
		{"bad train spec", []string{"knn", "--run", fx.run, "--train", "folder:" + empty + "/nope", "--test", fx.test}, "nope"},
	}
	for _, c := range cases {
		_, _, err := runCmd(t, newKNNCmd, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}
