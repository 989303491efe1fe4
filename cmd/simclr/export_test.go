package main

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/train"
)

// repoRoot walks up to go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	d, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		p := filepath.Dir(d)
		if p == d {
			t.Fatal("go.mod not found")
		}
		d = p
	}
}

func writeF32(t *testing.T, path string, x []float32) {
	t.Helper()
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkExportFile compares the file's tensors with the encoder's, by name,
// shape and value.
func checkExportFile(t *testing.T, path string, enc *nn.ResNet) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Deserialize(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float32{}
	for _, p := range enc.Params() {
		want[p.Name] = p.T.Data()
	}
	for _, b := range enc.Buffers() {
		want[b.Name] = b.T.Data()
	}
	counters := map[string]int64{}
	for _, c := range enc.Counters() {
		counters[c.Name] = *c.N
	}
	names := st.Names()
	if len(names) != len(want)+len(counters) {
		t.Errorf("%d tensors, want %d", len(names), len(want)+len(counters))
	}
	for _, n := range names {
		if strings.HasPrefix(n, "encoder.") || strings.HasPrefix(n, "head.") || strings.HasPrefix(n, "fc.") {
			t.Errorf("tensor %s is not a torchvision encoder name", n)
		}
		tv, _ := st.Tensor(n)
		if c, ok := counters[n]; ok {
			if tv.DType() != safetensors.I64 || len(tv.Shape()) != 0 || int64(binary.LittleEndian.Uint64(tv.Data())) != c {
				t.Errorf("%s: %v %v, want int64 scalar %d", n, tv.DType(), tv.Shape(), c)
			}
			continue
		}
		w, ok := want[n]
		if !ok {
			t.Errorf("unexpected tensor %s", n)
			continue
		}
		d := tv.Data()
		for i, v := range w {
			if math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:])) != v {
				t.Fatalf("%s[%d] differs", n, i)
			}
		}
	}
	_, md, err := safetensors.ReadMetadata(raw)
	if err != nil {
		t.Fatal(err)
	}
	return md.Metadata()
}

// exportCase is an exported encoder with inputs and simclr's embeddings of
// them, for scripts/check_export.py.
type exportCase struct{ export, images, embeddings string }

// newExportCase embeds a few random inputs with enc in Go (Reference
// backend, inference mode) and saves them as raw float32.
func newExportCase(t *testing.T, export string, enc *nn.ResNet, size int, seed uint64) exportCase {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 5))
	const n = 4
	x := make([]float32, n*3*size*size)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	tp := engine.NewTape(engine.Reference())
	tp.SetGrad(false)
	h := tp.Plain(enc.Forward(tp, engine.FromData(x, n, 3, size, size), false))
	c := exportCase{export: export, images: export + ".x.f32", embeddings: export + ".h.f32"}
	writeF32(t, c.images, x)
	writeF32(t, c.embeddings, h.Data())
	return c
}

// runCheckScript asks PyTorch to load every export into torchvision's
// ResNet (strict) and reproduce simclr's embeddings to 1e-4. It skips when
// /usr/bin/python3 or its torch/torchvision/numpy are missing.
func runCheckScript(t *testing.T, cases ...exportCase) {
	t.Helper()
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	args := []string{filepath.Join(repoRoot(t), "scripts", "check_export.py"), "--tol", "1e-4"}
	for _, c := range cases {
		args = append(args, "--export", c.export, "--images", c.images, "--embeddings", c.embeddings)
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	t.Logf("check_export.py:\n%s", out)
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 3 {
		t.Skipf("python3 lacks torch/torchvision/numpy: %s", out)
	}
	if err != nil {
		t.Fatalf("PyTorch does not reproduce simclr's embeddings: %v", err)
	}
}

// randomBottleneckEncoder is a ResNet-50 (v1.5 bottlenecks, 7x7 stem with
// max-pool) with random BN parameters, statistics and counters, so an export
// that mixed up any of them would change the embeddings.
func randomBottleneckEncoder(t *testing.T) *nn.ResNet {
	enc, err := nn.NewResNet(nn.ResNetConfig{Arch: "resnet50", Width: 0.125, Stem: "imagenet", Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for _, b := range enc.Buffers() {
		d := b.T.Data()
		for i := range d {
			if strings.HasSuffix(b.Name, "running_var") {
				d[i] = float32(0.5 + rng.Float64())
			} else {
				d[i] = float32(0.2 * rng.NormFloat64())
			}
		}
	}
	for _, p := range enc.Params() {
		if p.Kind == nn.BNScale || p.Kind == nn.BNShift {
			d := p.T.Data()
			for i := range d {
				d[i] = float32(0.5 + 0.5*rng.Float64())
			}
		}
	}
	for i, c := range enc.Counters() {
		*c.N = int64(i + 1)
	}
	return enc
}

func TestExportLoadsIntoTorchvision(t *testing.T) {
	fx := tinyRun(t)
	out := filepath.Join(t.TempDir(), "enc.safetensors")
	stdout, stderr, err := runCmd(t, newExportCmd, "export", "--run", fx.run, "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, `"arch":"resnet18"`) {
		t.Errorf("stdout %q", stdout)
	}
	r, err := train.LoadRun(fx.run)
	if err != nil {
		t.Fatal(err)
	}
	md := checkExportFile(t, out, r.Model.Encoder.(*nn.ResNet))
	if md["stem"] != "cifar" || md["base_channels"] != "8" || md["format"] != eval.ExportFormat {
		t.Errorf("metadata %v", md)
	}
	tracked := false
	for _, c := range r.Model.Encoder.Counters() {
		tracked = tracked || *c.N > 0
	}
	if !tracked {
		t.Error("the pretrained fixture has no BN batches tracked; the export test would not see them")
	}
	cases := []exportCase{newExportCase(t, out, r.Model.Encoder.(*nn.ResNet), 8, 1)}

	// The other layout: bottlenecks, ImageNet stem.
	enc := randomBottleneckEncoder(t)
	out50 := filepath.Join(t.TempDir(), "r50.safetensors")
	meta := map[string]string{"arch": "resnet50", "width": "0.125", "stem": "imagenet", "base_channels": "8", "in_channels": "3", "out_dim": "256"}
	if err := eval.ExportEncoder(out50, enc, meta); err != nil {
		t.Fatal(err)
	}
	checkExportFile(t, out50, enc)
	cases = append(cases, newExportCase(t, out50, enc, 32, 2))
	runCheckScript(t, cases...)
}
