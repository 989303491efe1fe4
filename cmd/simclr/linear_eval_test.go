package main

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/train"
)

func checkpointBytes(t *testing.T, run string) []byte {
	t.Helper()
	p, err := train.LatestCheckpoint(run)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLinearEvalPrecomputed(t *testing.T) {
	fx := tinyRun(t)
	ck := checkpointBytes(t, fx.run)
	r0, err := train.LoadRun(fx.run)
	if err != nil {
		t.Fatal(err)
	}
	want := encoderHash(r0.Model.Encoder)
	out, stderr, err := runCmd(t, newLinearEvalCmd, "linear-eval", "--run", fx.run, "--train", fx.train, "--test", fx.test, "--seed", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	r := lastJSON(t, out)
	// The encoder, BN running statistics included, is untouched.
	if r.Extra["encoder_sha256_before"] != want || r.Extra["encoder_sha256_after"] != want {
		t.Errorf("encoder hash before %v after %v, checkpoint's %v", r.Extra["encoder_sha256_before"], r.Extra["encoder_sha256_after"], want)
	}
	if !bytes.Equal(ck, checkpointBytes(t, fx.run)) {
		t.Error("the checkpoint file changed")
	}
	for _, s := range []string{"frozen", "L-BFGS", "lambda="} {
		if !strings.Contains(r.Protocol, s) {
			t.Errorf("protocol %q lacks %q", r.Protocol, s)
		}
	}
	// Same numbers as the probe run directly on independently computed features.
	trX, trY, dim := features(t, fx.run, fx.train)
	teX, teY, _ := features(t, fx.run, fx.test)
	pr, err := eval.LinearProbe(trX, trY, teX, teY, dim, 3, eval.ProbeConfig{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(pr.Top1-r.Top1) > 1e-9 || math.Abs(pr.Top5-r.Top5) > 1e-9 {
		t.Errorf("command %v/%v, direct probe %v/%v", r.Top1, r.Top5, pr.Top1, pr.Top5)
	}
	// Colour classes are linearly separable even for this tiny encoder.
	if r.Top1 < 0.9 {
		t.Errorf("top1 %v on colour classes, want >= 0.9", r.Top1)
	}
}

func TestLinearEvalCropFlipKeepsEncoder(t *testing.T) {
	fx := tinyRun(t)
	r0, err := train.LoadRun(fx.run)
	if err != nil {
		t.Fatal(err)
	}
	want := encoderHash(r0.Model.Encoder)
	out, stderr, err := runCmd(t, newLinearEvalCmd, "linear-eval", "--run", fx.run, "--train", fx.train, "--test", fx.test,
		"--augment", "crop-flip", "--epochs", "3", "--batch", "12", "--lr", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	r := lastJSON(t, out)
	if r.Extra["encoder_sha256_after"] != want {
		t.Errorf("encoder changed: %v, checkpoint's %v", r.Extra["encoder_sha256_after"], want)
	}
	if !strings.Contains(r.Protocol, "crop + flip") || r.NTest != 18 {
		t.Errorf("result %+v", r)
	}
	if !strings.Contains(stderr, "epoch 3/3") {
		t.Errorf("no per-epoch progress on stderr:\n%s", stderr)
	}
	if _, _, err := runCmd(t, newLinearEvalCmd, "linear-eval", "--run", fx.run, "--train", fx.train, "--test", fx.test, "--augment", "jitter"); err == nil || !strings.Contains(err.Error(), "crop-flip") {
		t.Errorf("bad --augment: %v", err)
	}
}
