package train

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/stfile"
	"github.com/simclr-go/simclr/stfile/stfiletest"
)

// testdata/oldrun holds what the binary of main as of 2026-12-07 (before
// the augment block; its Meta copied arch, width, ... from the config)
// wrote for
//
//	simclr pretrain --data folder:imgs --out run --width 0.125 --batch 4 --epochs 2 --image-size 8 \
//	  --knn-every 0 --workers 1 --threads 1 --blur-p 0.25 --checkpoint-every 3 --keep-checkpoints 2
//
// on 12 PNGs in two classes: config.yaml and metrics.jsonl verbatim, and the
// __metadata__ of checkpoints/ckpt-00000003.safetensors (end of epoch 1)
// verbatim. The tensors are left out to keep the fixture small (their
// layout did not change); oldRun writes freshly initialised ones under
// that metadata.
const oldRunFixture = "testdata/oldrun"

// oldRun rebuilds that run directory as run/ in a fresh working directory
// that also holds imgs/, so that the run's relative data spec resolves.
func oldRun(t *testing.T) (dir string, md map[string]string) {
	t.Helper()
	t.Chdir(t.TempDir())
	for i := range 12 {
		cls := []string{"a", "b"}[i%2]
		img := image.NewRGBA(image.Rect(0, 0, 12, 12))
		for p := range img.Pix {
			img.Pix[p] = byte(40*i + 90*(i%2) + p%7)
		}
		img.Set(0, 0, color.RGBA{255, 0, 0, 255})
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join("imgs", cls), 0o755)
		if err := os.WriteFile(filepath.Join("imgs", cls, string(rune('0'+i))+".png"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fix := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(testdataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := json.Unmarshal(fix("ckpt-00000003.metadata.json"), &md); err != nil {
		t.Fatal(err)
	}
	dir = "run"
	ckdir := filepath.Join(dir, "checkpoints")
	if err := os.MkdirAll(ckdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.yaml", "metrics.jsonl"} {
		if err := os.WriteFile(filepath.Join(dir, f), fix(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	if err := cfg.decodeYAML("old embedded config", []byte(md["config"])); err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The old binary wrote no checksums: write the file, then strip them.
	path := filepath.Join(ckdir, "ckpt-00000003.safetensors")
	if err := stfile.Write(path, modelTensors(m), md, stfile.Options{}); err != nil {
		t.Fatal(err)
	}
	stfiletest.StripChecksums(t, path)
	return dir, md
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// testdataDir is the package's testdata folder, absolute, since oldRun
// changes the working directory.
var testdataDir = func() string {
	d, err := filepath.Abs(oldRunFixture)
	if err != nil {
		panic(err)
	}
	return d
}()

// A run written before the augment block and the slim Meta loads: the
// model description comes from the embedded config (old flat keys mapped),
// and agrees with what the old Meta copied from it.
func TestOldRunLoads(t *testing.T) {
	dir, md := oldRun(t)
	r, err := LoadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	var old map[string]any // oracle: the old checkpoint's copies
	if err := json.Unmarshal([]byte(md["simclr"]), &old); err != nil {
		t.Fatal(err)
	}
	c := r.Config
	got := map[string]any{"arch": c.Arch, "width": c.Width, "stem": c.Stem, "head": c.Head,
		"head_hidden": float64(c.HeadHidden), "head_out": float64(c.HeadOut), "optimizer": c.Optimizer, "seed": float64(c.Seed)}
	for k, v := range got {
		if old[k] != v {
			t.Errorf("%s: config says %v, the old Meta %v", k, v, old[k])
		}
	}
	if r.Step != 3 || r.Epoch != 1 || r.Meta.StepsPerEpoch != 3 {
		t.Errorf("position: step %d epoch %d spe %d", r.Step, r.Epoch, r.Meta.StepsPerEpoch)
	}
	ac, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if float64(ac.Size) != old["image_size"] || ac.BlurP != 0.25 || ac.JitterStrength != 0.5 {
		t.Errorf("augmentation of the old run: %+v", ac)
	}
}

// `pretrain --resume` of such a run continues it (the old config.yaml is
// the base, its flat keys mapped) and rewrites config.yaml in the new
// layout, with the same trajectory hash as the old config resolved.
func TestOldRunResumes(t *testing.T) {
	dir, _ := oldRun(t)
	cfg := DefaultConfig()
	if err := cfg.LoadConfigFile(filepath.Join(dir, "config.yaml")); err != nil {
		t.Fatal(err)
	}
	cfg.Resume = true
	sum, err, log := pretrain(t, cfg, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if sum.Steps != 6 || sum.Epochs != 2 || !strings.Contains(log, "resuming") {
		t.Errorf("summary %+v\n%s", sum, log)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\naugment:\n  size: 8\n") || strings.Contains(string(b), "\nblur_p:") {
		t.Errorf("config.yaml not in the new layout:\n%s", b)
	}
	// log_every 10: steps are logged at epoch ends. Step 3 is the old
	// run's record, step 6 the resumed run's (new weights: a new loss),
	// once: the old step-6 record was truncated.
	steps := stepLosses(t, dir)
	if len(steps) != 2 || steps[3] != 1.8215733738747426 || steps[6] == 1.9136175232605555 || steps[6] == 0 {
		t.Errorf("metrics steps %v", steps)
	}
	if n := strings.Count(string(must(os.ReadFile(filepath.Join(dir, "metrics.jsonl")))), `"type":"step","step":6,`); n != 1 {
		t.Errorf("%d step-6 records, want 1", n)
	}
}

// A checkpoint keeps no copy of config fields in its Meta: the embedded
// config is the one source, and LoadCheckpoint rebuilds the model from it.
func TestCheckpointMetaHasNoConfigFields(t *testing.T) {
	cfgKeys := map[string]bool{}
	ct := reflect.TypeOf(Config{})
	for i := 0; i < ct.NumField(); i++ {
		cfgKeys[yamlKey(ct.Field(i))] = true
	}
	for _, k := range legacyAugmentKeys {
		cfgKeys[k] = true
	}
	mt := reflect.TypeOf(Meta{})
	for i := 0; i < mt.NumField(); i++ {
		k, _, _ := strings.Cut(mt.Field(i).Tag.Get("json"), ",")
		if cfgKeys[k] && k != "batch" { // Meta.Batch is a position, not the batch size
			t.Errorf("Meta.%s (%q) copies a config key", mt.Field(i).Name, k)
		}
	}

	cfg := tinyConfig(t, writeTinyCIFAR(t, t.TempDir(), 8, 1))
	cfg.Epochs, cfg.KNNEvery, cfg.Width = 1, 0, 0.1 // 0.1: below train's old 0.125 limit
	if _, err, log := pretrain(t, cfg, Options{}); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	path, err := LatestCheckpoint(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := parseSafetensors(t, path)
	var meta map[string]any
	json.Unmarshal([]byte(hdr["__metadata__"].(map[string]any)["simclr"].(string)), &meta)
	for _, k := range []string{"arch", "width", "stem", "head", "head_hidden", "head_out", "optimizer", "image_size", "seed"} {
		if _, ok := meta[k]; ok {
			t.Errorf("checkpoint Meta still holds %s: %v", k, meta)
		}
	}
	r, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Config.Width != 0.1 || r.Model.Encoder.(*nn.ResNet).Config().Width != 0.1 || r.Config.Arch != "resnet18" {
		t.Errorf("rebuilt %s x%v", r.Config.Arch, r.Model.Encoder.(*nn.ResNet).Config().Width)
	}
}
