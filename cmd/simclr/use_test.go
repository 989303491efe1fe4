package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/train"
	"github.com/spf13/cobra"
)

// makeFolder writes class sub-folders of small PNGs. Each class has its own
// dominant colour plus noise, so that even simple features separate them.
func makeFolder(t testing.TB, dir string, classes []string, perClass, size int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	base := []color.RGBA{{220, 40, 40, 255}, {40, 200, 60, 255}, {50, 60, 220, 255}, {230, 220, 40, 255}}
	for ci, c := range classes {
		cd := filepath.Join(dir, c)
		if err := os.MkdirAll(cd, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perClass; i++ {
			img := image.NewRGBA(image.Rect(0, 0, size, size))
			b := base[ci%len(base)]
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					n := func(v uint8) uint8 { return uint8(min(255, max(0, int(v)+rng.IntN(61)-30))) }
					img.SetRGBA(x, y, color.RGBA{n(b.R), n(b.G), n(b.B), 255})
				}
			}
			f, err := os.Create(filepath.Join(cd, fmt.Sprintf("%s_%03d.png", c, i)))
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}

// fixture is a tiny pretrained run shared by the command tests.
type fixture struct {
	root      string
	run       string
	train     string // folder: spec
	test      string
	otherTest string // classes the training set lacks
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

// testBackend is the Reference backend: deterministic and always present.
var testBackend = engine.Reference()

func tinyRun(t *testing.T) fixture {
	t.Helper()
	fixOnce.Do(func() {
		root, err := os.MkdirTemp("", "simclr-use-test-")
		if err != nil {
			fixErr = err
			return
		}
		fix.root = root
		classes := []string{"red", "green", "blue"}
		makeFolder(t, filepath.Join(root, "train"), classes, 12, 8, 1)
		makeFolder(t, filepath.Join(root, "test"), classes, 6, 8, 2)
		makeFolder(t, filepath.Join(root, "other"), []string{"red", "purple"}, 3, 8, 3)
		fix.train = "folder:" + filepath.Join(root, "train")
		fix.test = "folder:" + filepath.Join(root, "test")
		fix.otherTest = "folder:" + filepath.Join(root, "other")
		fix.run = filepath.Join(root, "run")
		cfg := train.DefaultConfig()
		cfg.Data, cfg.Out = fix.train, fix.run
		cfg.Width, cfg.Batch, cfg.Epochs = 0.125, 12, 1
		if fixErr = cfg.Augment.Set("size", "8"); fixErr != nil {
			return
		}
		cfg.WarmupEpochs, cfg.KNNEvery, cfg.Threads, cfg.Workers = 0, 0, 1, 2
		_, fixErr = train.Pretrain(context.Background(), cfg, io.Discard, train.Options{Backend: testBackend})
	})
	if fixErr != nil {
		t.Fatalf("pretraining the test run: %v", fixErr)
	}
	return fix
}

func TestMain(m *testing.M) {
	runAsSimclr() // exits here when the test binary runs as simclr (repro_test.go)
	code := m.Run()
	if fix.root != "" {
		os.RemoveAll(fix.root)
	}
	os.Exit(code)
}

// runCmd executes one subcommand on a fresh command tree and returns stdout
// and stderr.
func runCmd(t *testing.T, newCmd func() *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "simclr", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newCmd())
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

// lastJSON decodes the final stdout line.
func lastJSON(t *testing.T, stdout string) result {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var r result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last stdout line is not JSON: %v\n%s", err, stdout)
	}
	if r.Top1 < 0 || r.Top1 > 1 || r.Top5 < r.Top1 || r.Top5 > 1 || r.Protocol == "" {
		t.Fatalf("bad result %+v", r)
	}
	return r
}
