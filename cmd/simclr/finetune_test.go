package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestFinetuneCommand(t *testing.T) {
	fx := tinyRun(t)
	ck := checkpointBytes(t, fx.run)
	// round(0.34*36/3) = 4 images of each of the 3 classes.
	out, stderr, err := runCmd(t, newFinetuneCmd, "finetune", "--run", fx.run, "--train", fx.train, "--test", fx.test,
		"--label-fraction", "0.34", "--epochs", "2", "--batch", "6", "--seed", "4")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	r := lastJSON(t, out)
	if r.NTrain != 12 || r.NTest != 18 || fmt.Sprint(r.Extra["per_class"]) != "[4 4 4]" {
		t.Errorf("result %+v", r)
	}
	if !strings.Contains(r.Protocol, "Nesterov") || !strings.Contains(r.Protocol, "crop + flip") {
		t.Errorf("protocol %q", r.Protocol)
	}
	if !strings.Contains(stderr, "epoch 2/2") {
		t.Errorf("stderr lacks progress:\n%s", stderr)
	}
	if !bytes.Equal(ck, checkpointBytes(t, fx.run)) {
		t.Error("finetune modified the run's checkpoint")
	}
	// Same seed, same subset and training: same result.
	out2, _, err := runCmd(t, newFinetuneCmd, "finetune", "--run", fx.run, "--train", fx.train, "--test", fx.test,
		"--label-fraction", "0.34", "--epochs", "2", "--batch", "6", "--seed", "4")
	if err != nil {
		t.Fatal(err)
	}
	if r2 := lastJSON(t, out2); r2.Top1 != r.Top1 || r2.Top5 != r.Top5 {
		t.Errorf("not reproducible: %v/%v then %v/%v", r.Top1, r.Top5, r2.Top1, r2.Top5)
	}
	for _, bad := range []string{"0", "1.5", "-0.1"} {
		_, _, err := runCmd(t, newFinetuneCmd, "finetune", "--run", fx.run, "--train", fx.train, "--test", fx.test, "--label-fraction", bad)
		if err == nil || !strings.Contains(err.Error(), "label-fraction") {
			t.Errorf("--label-fraction %s: %v", bad, err)
		}
	}
	if _, _, err := runCmd(t, newFinetuneCmd, "finetune", "--run", fx.run, "--train", fx.train, "--test", fx.test); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("missing --label-fraction: %v", err)
	}
}
