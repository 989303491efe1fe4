package nn

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Parameter counts of torchvision's models with fc removed, from
// ../shared/reference/RESULTS.md (measured in PyTorch) and torchvision's
// documented totals minus fc (512·1000+1000 or 2048·1000+1000).
func TestParamCountsMatchTorchvision(t *testing.T) {
	cases := []struct {
		cfg  ResNetConfig
		want int
	}{
		{ResNetConfig{Arch: "resnet18", Width: 1, Stem: "cifar"}, 11_168_832},
		{ResNetConfig{Arch: "resnet18", Width: 0.25, Stem: "cifar"}, 700_176},
		{ResNetConfig{Arch: "resnet50", Width: 1, Stem: "cifar"}, 23_500_352},
		{ResNetConfig{Arch: "resnet18", Width: 1, Stem: "imagenet"}, 11_689_512 - 513_000},
		{ResNetConfig{Arch: "resnet34", Width: 1, Stem: "imagenet"}, 21_797_672 - 513_000},
		{ResNetConfig{Arch: "resnet50", Width: 1, Stem: "imagenet"}, 25_557_032 - 2_049_000},
	}
	for _, c := range cases {
		r, err := NewResNet(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := NumParams(r); got != c.want {
			t.Errorf("%+v: %d params, torchvision has %d", c.cfg, got, c.want)
		}
	}
}

// The reference script's whole model (encoder + v1 head with BN), from
// ../shared/reference/results/simclr.jsonl ("params").
func TestModelParamCountsMatchReference(t *testing.T) {
	cases := []struct {
		arch  string
		width float64
		want  int
	}{
		{"resnet18", 1, 11_498_176},
		{"resnet18", 0.25, 733_456},
		{"resnet50", 1, 27_963_072},
	}
	for _, c := range cases {
		m, err := NewModel(ResNetConfig{Arch: c.arch, Width: c.width, Stem: "cifar"}, HeadConfig{Version: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := NumParams(m); got != c.want {
			t.Errorf("%s w%v + v1 head: %d params, reference has %d", c.arch, c.width, got, c.want)
		}
	}
}

// FLOPs against the reference's hook-based count: fwd_gflop_per_view (4
// decimals, encoder + head, 32x32) and RESULTS.md's GFLOP/step (1 decimal,
// 3 × forward × views).
func TestFLOPsMatchReference(t *testing.T) {
	cases := []struct {
		arch        string
		width       float64
		perView     float64 // GFLOP, rounded to 4 decimals
		views       int
		trainGFStep float64 // rounded to 0.1
		embedB      int
		embedGF     float64
	}{
		{"resnet18", 1, 1.1115, 128, 426.8, 256, 284.5},
		{"resnet18", 0.25, 0.0702, 512, 107.8, 256, 18.0},
		{"resnet50", 1, 2.6045, 128, 1000.1, 256, 666.8},
	}
	round := func(x float64, digits int) float64 {
		p := math.Pow(10, float64(digits))
		return math.Round(x*p) / p
	}
	for _, c := range cases {
		m, err := NewModel(ResNetConfig{Arch: c.arch, Width: c.width, Stem: "cifar"}, HeadConfig{Version: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		f := float64(m.FLOPs(32, 32)) / 1e9
		if got := round(f, 4); got != c.perView {
			t.Errorf("%s w%v: %.6f GFLOP/view, reference %.4f", c.arch, c.width, f, c.perView)
		}
		if got := round(3*f*float64(c.views), 1); got != c.trainGFStep {
			t.Errorf("%s w%v: %.2f GFLOP/train step, reference %.1f", c.arch, c.width, 3*f*float64(c.views), c.trainGFStep)
		}
		if got := round(f*float64(c.embedB), 1); got != c.embedGF {
			t.Errorf("%s w%v: %.2f GFLOP/embed step, reference %.1f", c.arch, c.width, f*float64(c.embedB), c.embedGF)
		}
		if enc := m.Encoder.(*ResNet).FLOPs(32, 32); enc >= m.FLOPs(32, 32) || enc <= 0 {
			t.Errorf("encoder FLOPs %d should be positive and below the model's %d", enc, m.FLOPs(32, 32))
		}
	}
}

// An independent count for the ImageNet stem: the well-known 1.82 GMAC of
// ResNet-18 and 4.1 GMAC of ResNet-50 at 224x224 (fc excluded here, which
// is 0.5 / 2 MMAC).
func TestFLOPsImageNetStem(t *testing.T) {
	for _, c := range []struct {
		arch      string
		lo, hi    float64 // GFLOP = 2 × GMAC
		wantShape int
	}{{"resnet18", 3.62, 3.66, 512}, {"resnet50", 8.1, 8.3, 2048}} {
		r, err := NewResNet(ResNetConfig{Arch: c.arch, Width: 1, Stem: "imagenet"})
		if err != nil {
			t.Fatal(err)
		}
		g := float64(r.FLOPs(224, 224)) / 1e9
		if g < c.lo || g > c.hi {
			t.Errorf("%s at 224: %.3f GFLOP, want in [%v, %v]", c.arch, g, c.lo, c.hi)
		}
		if r.OutDim() != c.wantShape {
			t.Errorf("%s OutDim %d, want %d", c.arch, r.OutDim(), c.wantShape)
		}
	}
}

type tvListing struct {
	Params  [][2]json.RawMessage `json:"params"`
	Buffers [][2]json.RawMessage `json:"buffers"`
}

type named struct {
	name  string
	shape []int
}

func loadTorchvision(t *testing.T) map[string][2][]named {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "torchvision_names.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]tvListing
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("testdata/torchvision_names.json: %v", err)
	}
	conv := func(rows [][2]json.RawMessage) []named {
		var out []named
		for _, r := range rows {
			var n named
			if err := json.Unmarshal(r[0], &n.name); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(r[1], &n.shape); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	res := map[string][2][]named{}
	for k, v := range m {
		res[k] = [2][]named{conv(v.Params), conv(v.Buffers)}
	}
	return res
}

func paramList(ps []Param) []named {
	var out []named
	for _, p := range ps {
		out = append(out, named{p.Name, p.T.Shape()})
	}
	return out
}

func bufferList(bs []Buffer) []named {
	var out []named
	for _, b := range bs {
		out = append(out, named{b.Name, b.T.Shape()})
	}
	return out
}

func diffNamed(t *testing.T, what string, got, want []named) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d entries, torchvision has %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].name != want[i].name || !slices.Equal(got[i].shape, want[i].shape) {
			t.Errorf("%s[%d]: got %s %v, torchvision %s %v", what, i, got[i].name, got[i].shape, want[i].name, want[i].shape)
			return
		}
	}
}

// Names, shapes and order must be exactly torchvision's state dict so that
// exported weights load into PyTorch.
func TestNamesMatchTorchvision(t *testing.T) {
	tv := loadTorchvision(t)
	for _, arch := range []string{"resnet18", "resnet34", "resnet50"} {
		for _, stem := range []string{"imagenet", "cifar"} {
			key := arch + "/" + stem
			want, ok := tv[key]
			if !ok {
				t.Fatalf("testdata lacks %s", key)
			}
			r, err := NewResNet(ResNetConfig{Arch: arch, Width: 1, Stem: stem})
			if err != nil {
				t.Fatal(err)
			}
			diffNamed(t, key+" params", paramList(r.Params()), want[0])
			var wantBufs, wantCounters []named
			for _, b := range want[1] {
				if strings.HasSuffix(b.name, ".num_batches_tracked") {
					wantCounters = append(wantCounters, b)
				} else {
					wantBufs = append(wantBufs, b)
				}
			}
			diffNamed(t, key+" buffers", bufferList(r.Buffers()), wantBufs)
			var counters []named
			for _, c := range r.Counters() {
				counters = append(counters, named{c.Name, []int{}})
			}
			diffNamed(t, key+" counters", counters, wantCounters)
		}
	}
}

func TestHeadNamesMatchPyTorch(t *testing.T) {
	tv := loadTorchvision(t)
	for _, v := range []string{"v1", "v2"} {
		h, err := NewHead(HeadConfig{Version: v, In: 512})
		if err != nil {
			t.Fatal(err)
		}
		want := tv["head/"+v+"/512"]
		// PyTorch's state dict = params + buffers; ours moves v2's centre-less
		// β into the buffers, so compare the union as a name→shape map and the
		// trainable list in order without it.
		all := map[string]string{}
		for _, n := range append(paramList(h.Params()), bufferList(h.Buffers())...) {
			all[n.name] = fmt.Sprint(n.shape)
		}
		for _, c := range h.Counters() {
			all[c.Name] = "[]"
		}
		wantAll := map[string]string{}
		var wantParams []named
		for _, n := range append(want[0], want[1]...) {
			wantAll[n.name] = fmt.Sprint(n.shape)
		}
		for _, n := range want[0] {
			if v == "v2" && n.name == "head.7.bias" {
				continue
			}
			wantParams = append(wantParams, n)
		}
		if fmt.Sprint(all) != fmt.Sprint(wantAll) {
			t.Errorf("%s state dict:\n got %v\nwant %v", v, all, wantAll)
		}
		diffNamed(t, v+" params", paramList(h.Params()), wantParams)
	}
}

func TestParamKinds(t *testing.T) {
	m, err := NewModel(ResNetConfig{Arch: "resnet50", Width: 0.125, Stem: "cifar"}, HeadConfig{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		var want ParamKind
		switch {
		case strings.Contains(p.Name, "bn") || strings.HasSuffix(p.Name, "downsample.1.weight") || p.Name == "head.1.weight":
			want = BNScale
			if strings.HasSuffix(p.Name, ".bias") {
				want = BNShift
			}
		case strings.HasSuffix(p.Name, "downsample.1.bias") || p.Name == "head.1.bias":
			want = BNShift
		case strings.HasSuffix(p.Name, ".bias"):
			want = Bias
		default:
			want = Weight
		}
		if p.Kind != want {
			t.Errorf("%s: kind %d, want %d", p.Name, p.Kind, want)
		}
		if (len(p.T.Shape()) > 1) != (p.Kind == Weight) {
			t.Errorf("%s: shape %v with kind %d: only weights are matrices", p.Name, p.T.Shape(), p.Kind)
		}
		if !p.T.RequiresGrad() {
			t.Errorf("%s does not require grad", p.Name)
		}
	}
}

func TestWidthChannels(t *testing.T) {
	for _, c := range []struct {
		arch  string
		width float64
		want  []int // stem, then each stage's block output
	}{
		{"resnet18", 0.125, []int{8, 8, 16, 32, 64}},
		{"resnet18", 0.25, []int{16, 16, 32, 64, 128}},
		{"resnet34", 0.75, []int{48, 48, 96, 192, 384}},
		{"resnet18", 0.3, []int{19, 19, 38, 76, 152}},
		{"resnet50", 0.5, []int{32, 128, 256, 512, 1024}},
		{"resnet18", 0.001, []int{1, 1, 2, 4, 8}},
	} {
		r, err := NewResNet(ResNetConfig{Arch: c.arch, Width: c.width, Stem: "cifar"})
		if err != nil {
			t.Fatal(err)
		}
		got := []int{r.Conv1.Out}
		for _, l := range r.Layers {
			b := l[len(l)-1]
			got = append(got, b.lastBN().C)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s w%v: channels %v, want %v", c.arch, c.width, got, c.want)
		}
		if r.OutDim() != c.want[4] {
			t.Errorf("%s w%v: OutDim %d, want %d", c.arch, c.width, r.OutDim(), c.want[4])
		}
	}
}

func TestBadConfigs(t *testing.T) {
	for _, c := range []struct {
		cfg  ResNetConfig
		want string
	}{
		{ResNetConfig{Arch: "resnet19", Width: 1, Stem: "cifar"}, "arch"},
		{ResNetConfig{Arch: "", Width: 1, Stem: "cifar"}, "arch"},
		{ResNetConfig{Arch: "resnet18", Width: 0, Stem: "cifar"}, "width"},
		{ResNetConfig{Arch: "resnet18", Width: -1, Stem: "cifar"}, "width"},
		{ResNetConfig{Arch: "resnet18", Width: 8, Stem: "cifar"}, "width"},
		{ResNetConfig{Arch: "resnet18", Width: math.NaN(), Stem: "cifar"}, "width"},
		{ResNetConfig{Arch: "resnet18", Width: 1, Stem: "stl"}, "stem"},
		{ResNetConfig{Arch: "resnet18", Width: 1, Stem: "cifar", InChannels: -3}, "channels"},
	} {
		_, err := NewResNet(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.cfg, err, c.want)
		}
	}
	for _, c := range []struct {
		cfg  HeadConfig
		want string
	}{
		{HeadConfig{Version: "v3", In: 8}, "version"},
		{HeadConfig{Version: "", In: 8}, "version"},
		{HeadConfig{Version: "v1", In: 0}, "sizes"},
		{HeadConfig{Version: "v2", In: 8, Hidden: -1}, "sizes"},
		{HeadConfig{Version: "v2", In: 8, Out: -5}, "sizes"},
	} {
		_, err := NewHead(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.cfg, err, c.want)
		}
	}
	if _, err := NewModel(ResNetConfig{Arch: "resnet18", Width: 1, Stem: "cifar"}, HeadConfig{Version: "x"}); err == nil {
		t.Error("NewModel accepted head version x")
	}
}

func TestHeadDefaults(t *testing.T) {
	h, err := NewHead(HeadConfig{Version: "v2", In: 64})
	if err != nil {
		t.Fatal(err)
	}
	if c := h.Config(); c.Hidden != 64 || c.Out != 128 || h.OutDim() != 128 {
		t.Errorf("defaults: %+v, OutDim %d; want hidden=in=64, out=128", c, h.OutDim())
	}
}

func sameValues(a, b []Param) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i].T.Data(), b[i].T.Data()) {
			return false
		}
	}
	return true
}

func TestDeterministicFromSeed(t *testing.T) {
	mk := func(seed uint64) *Model {
		m, err := NewModel(ResNetConfig{Arch: "resnet18", Width: 0.125, Stem: "cifar", Seed: seed},
			HeadConfig{Version: "v2", Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b, c := mk(7), mk(7), mk(8)
	if !sameValues(a.Params(), b.Params()) {
		t.Error("same seed gave different weights")
	}
	if slices.Equal(a.Encoder.(*ResNet).Conv1.W.Data(), c.Encoder.(*ResNet).Conv1.W.Data()) ||
		slices.Equal(a.Head.Linears[0].W.Data(), c.Head.Linears[0].W.Data()) {
		t.Error("different seeds gave the same conv1 or head weights")
	}
}

// Conv weights ~ N(0, 2/fan_out), linears ~ U(±1/√fan_in), BN γ=1 β=0,
// running mean 0 and variance 1.
func TestInitStatistics(t *testing.T) {
	m, err := NewModel(ResNetConfig{Arch: "resnet50", Width: 0.5, Stem: "imagenet", Seed: 3}, HeadConfig{Version: "v1", Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		d := p.T.Data()
		var s1, s2 float64
		maxAbs := 0.0
		for _, v := range d {
			s1 += float64(v)
			s2 += float64(v) * float64(v)
			maxAbs = max(maxAbs, math.Abs(float64(v)))
		}
		n := float64(len(d))
		mean, std := s1/n, math.Sqrt(s2/n-(s1/n)*(s1/n))
		sh := p.T.Shape()
		switch {
		case len(sh) == 4:
			want := math.Sqrt(2 / float64(sh[0]*sh[2]*sh[3]))
			// sampling error of a std estimate is ≈ std/√(2n); allow 6 of them
			tol := 6 * want / math.Sqrt(2*n)
			if math.Abs(std-want) > tol || math.Abs(mean) > 6*want/math.Sqrt(n) {
				t.Errorf("%s: mean %.4g std %.4g, want 0 and %.4g (tol %.2g)", p.Name, mean, std, want, tol)
			}
		case p.Kind == Weight || p.Kind == Bias:
			fanIn := m.Head.Linears[0].In
			if strings.HasPrefix(p.Name, "head.3") {
				fanIn = m.Head.Linears[1].In
			}
			bound := 1 / math.Sqrt(float64(fanIn))
			want := bound / math.Sqrt(3)
			if maxAbs > bound || math.Abs(std-want) > 6*want/math.Sqrt(2*n)+0.1*want {
				t.Errorf("%s: std %.4g max %.4g, want U(±%.4g) (std %.4g)", p.Name, std, maxAbs, bound, want)
			}
		case p.Kind == BNScale:
			if mean != 1 || std != 0 {
				t.Errorf("%s: γ not all 1", p.Name)
			}
		case p.Kind == BNShift:
			if maxAbs != 0 {
				t.Errorf("%s: β not all 0", p.Name)
			}
		}
	}
	for _, b := range m.Buffers() {
		want := float32(0)
		if strings.HasSuffix(b.Name, "running_var") {
			want = 1
		}
		for _, v := range b.T.Data() {
			if v != want {
				t.Fatalf("%s: %v, want all %v", b.Name, v, want)
			}
		}
	}
	for _, c := range m.Counters() {
		if *c.N != 0 {
			t.Errorf("%s = %d before any training step", c.Name, *c.N)
		}
	}
}

func TestZeroInitResidual(t *testing.T) {
	for _, arch := range []string{"resnet18", "resnet50"} {
		r, err := NewResNet(ResNetConfig{Arch: arch, Width: 0.125, Stem: "cifar", ZeroInitResidual: true})
		if err != nil {
			t.Fatal(err)
		}
		last := "bn2.weight"
		if arch == "resnet50" {
			last = "bn3.weight"
		}
		zeroed := 0
		for _, p := range r.Params() {
			if p.Kind != BNScale {
				continue
			}
			allZero := !slices.ContainsFunc(p.T.Data(), func(v float32) bool { return v != 0 })
			isLast := strings.HasPrefix(p.Name, "layer") && strings.HasSuffix(p.Name, last)
			if allZero != isLast {
				t.Errorf("%s %s: all zero = %v", arch, p.Name, allZero)
			}
			if allZero {
				zeroed++
			}
		}
		if want := 8; arch == "resnet18" && zeroed != want {
			t.Errorf("resnet18: %d zeroed BNs, want %d", zeroed, want)
		}
		if want := 16; arch == "resnet50" && zeroed != want {
			t.Errorf("resnet50: %d zeroed BNs, want %d", zeroed, want)
		}
	}
}
