package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/stfile"
	"github.com/simclr-go/simclr/stfile/stfiletest"
	"github.com/simclr-go/simclr/train"
	"github.com/spf13/cobra"
)

// foreignArchRun is a run directory whose checkpoint holds the fixture's
// ResNet-18 tensors but declares a ResNet-34: what a checkpoint of another
// architecture looks like to the loader.
func foreignArchRun(t *testing.T) (run, ckpt string) {
	t.Helper()
	fx := tinyRun(t)
	path, err := train.LatestCheckpoint(fx.run)
	if err != nil {
		t.Fatal(err)
	}
	run = t.TempDir()
	if err := os.MkdirAll(filepath.Join(run, "checkpoints"), 0o755); err != nil {
		t.Fatal(err)
	}
	ckpt = filepath.Join(run, "checkpoints", filepath.Base(path))
	stfiletest.Rewrite(t, path, ckpt, func(meta map[string]string) {
		if !strings.Contains(meta["config"], "arch: resnet18") {
			t.Fatalf("embedded config lacks the arch: %q", meta["config"])
		}
		meta["config"] = strings.Replace(meta["config"], "arch: resnet18", "arch: resnet34", 1)
		// Written as before checksums (which the edit above would break),
		// so that the loader gets as far as the architecture.
		delete(meta, stfile.ChecksumKey)
	})
	return run, ckpt
}

var (
	moreOnce sync.Once
	moreSpec string
)

// moreClassesTest is a labelled test folder with five classes, three of
// them the fixture's training classes.
func moreClassesTest(t *testing.T) string {
	t.Helper()
	fx := tinyRun(t)
	moreOnce.Do(func() {
		dir := filepath.Join(fx.root, "more")
		makeFolder(t, dir, []string{"red", "green", "blue", "purple", "cyan"}, 2, 8, 5)
		moreSpec = "folder:" + dir
	})
	return moreSpec
}

// TestEvalCommandsBadRunsAndLabels: each command that trains or scores on
// labels rejects, with an error naming the culprit, a run directory without
// a checkpoint, a checkpoint of another architecture, a test set with more
// classes than the training set, and test classes the training set lacks.
func TestEvalCommandsBadRunsAndLabels(t *testing.T) {
	fx := tinyRun(t)
	empty := t.TempDir()
	foreign, foreignCkpt := foreignArchRun(t)
	more := moreClassesTest(t)
	commands := []struct {
		name  string
		new   func() *cobra.Command
		extra []string
	}{
		{"knn", newKNNCmd, []string{"--k", "5"}},
		{"linear-eval", newLinearEvalCmd, nil},
		{"finetune", newFinetuneCmd, []string{"--label-fraction", "1", "--epochs", "1"}},
	}
	cases := []struct {
		name      string
		run, test string
		want      []string
	}{
		{"run without checkpoint", empty, fx.test, []string{empty, "checkpoint"}},
		{"checkpoint of another architecture", foreign, fx.test, []string{foreignCkpt, "resnet34"}},
		{"label count mismatch", fx.run, more, []string{"label count mismatch", more, "5 classes", fx.train, "has 3", "2 test classes unknown", "cyan, purple"}},
		{"unknown test classes", fx.run, fx.otherTest, []string{fx.otherTest, "1 class unknown to --train", "purple", "blue, green, red"}},
	}
	for _, c := range commands {
		for _, k := range cases {
			t.Run(c.name+"/"+k.name, func(t *testing.T) {
				args := append([]string{c.name, "--run", k.run, "--train", fx.train, "--test", k.test}, c.extra...)
				out, _, err := runCmd(t, c.new, args...)
				if err == nil {
					t.Fatalf("no error; stdout %q", out)
				}
				for _, w := range k.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if out != "" {
					t.Errorf("printed a result despite the error: %q", out)
				}
			})
		}
	}
}

// namelessDS is a labelled dataset without class names, as a custom
// Dataset may be: labels can then only be matched by number.
type namelessDS struct{ n, classes int }

func (d namelessDS) Len() int                          { return d.n }
func (d namelessDS) Image(int) (*augment.Image, error) { return nil, nil }
func (d namelessDS) Label(i int) int                   { return i % d.classes }
func (d namelessDS) NumClasses() int                   { return d.classes }
func (d namelessDS) ClassNames() []string              { return nil }
func (d namelessDS) Name(i int) string                 { return "x" }

var _ data.Dataset = namelessDS{}

func TestMatchClasses(t *testing.T) {
	// Without names, the counts must agree.
	if _, _, _, _, err := matchClasses("a", namelessDS{10, 10}, "b", namelessDS{6, 3}); err == nil ||
		!strings.Contains(err.Error(), "label count mismatch") || !strings.Contains(err.Error(), "a has 10 classes") || !strings.Contains(err.Error(), "b has 3") {
		t.Errorf("nameless 10 vs 3 classes: %v", err)
	}
	_, te, classes, _, err := matchClasses("a", namelessDS{10, 4}, "b", namelessDS{6, 4})
	if err != nil || classes != 4 || te.Label(5) != 1 {
		t.Errorf("nameless 4 vs 4 classes: %v, %d classes", err, classes)
	}
	// With names, the test labels are mapped by name, and a test set may
	// use only some training classes.
	fx := tinyRun(t)
	tr, err := data.Open(fx.train)
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(t.TempDir(), "sub")
	makeFolder(t, sub, []string{"blue", "red"}, 1, 8, 9)
	teDS, err := data.Open("folder:" + sub)
	if err != nil {
		t.Fatal(err)
	}
	_, te, classes, names, err := matchClasses(fx.train, tr, "folder:"+sub, teDS)
	if err != nil || classes != 3 {
		t.Fatalf("subset of classes: %v, %d classes", err, classes)
	}
	// Test labels: blue=0, red=1 in the subset; train order is blue, green, red.
	for i, want := range []string{"blue", "red"} {
		if got := names[te.Label(i)]; got != want {
			t.Errorf("test image %d (%s) mapped to %s", i, teDS.Name(i), got)
		}
	}
}
