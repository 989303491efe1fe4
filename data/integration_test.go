package data

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/simclr-go/simclr/augment"
)

// sharedData returns ../shared/data relative to the repository root, or
// skips the test when it is absent.
func sharedData(t testing.TB, sub string) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for !fileExists(filepath.Join(dir, "go.mod")) {
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "data", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not present; skipping the real-data test", p)
	}
	return p
}

// The real CIFAR-10 files, against the facts in shared/data/README.md.
func TestCIFAR10Real(t *testing.T) {
	dir := sharedData(t, "cifar10")
	ds, err := Open("cifar10:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 50000 {
		t.Fatalf("train Len %d", ds.Len())
	}
	// Label counts of data_batch_1 (published counts of the official file).
	counts := make([]int, 10)
	for i := range 10000 {
		counts[ds.Label(i)]++
	}
	if want := []int{1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981}; !slices.Equal(counts, want) {
		t.Errorf("data_batch_1 label counts %v, want %v", counts, want)
	}
	// First records: frog, truck, truck; data_batch_2 starts with labels 1, 6.
	for i, want := range map[int]int{0: 6, 1: 9, 2: 9, 10000: 1, 10001: 6, 49999: 1} {
		if ds.Label(i) != want {
			t.Errorf("label of record %d = %d, want %d", i, ds.Label(i), want)
		}
	}
	px := func(i, c, k int) int {
		img, err := ds.Image(i)
		if err != nil {
			t.Fatal(err)
		}
		return int(math.Round(float64(img.Pix[c*1024+k]) * 255))
	}
	if got := []int{px(10000, 0, 0), px(10000, 0, 1), px(10000, 0, 2)}; !slices.Equal(got, []int{35, 27, 25}) {
		t.Errorf("first red pixels of data_batch_2: %v", got)
	}
	if got := []int{px(49999, 0, 0), px(49999, 0, 1), px(49999, 0, 2)}; !slices.Equal(got, []int{229, 236, 234}) {
		t.Errorf("first red pixels of the last train record: %v", got)
	}
	if got := []int{px(49999, 2, 1021), px(49999, 2, 1022), px(49999, 2, 1023)}; !slices.Equal(got, []int{173, 162, 161}) {
		t.Errorf("last blue pixels of the last train record: %v", got)
	}
	// Channel means of the train split.
	var sum [3]float64
	for i := range ds.Len() {
		img, _ := ds.Image(i)
		for c := range 3 {
			for _, v := range img.Pix[c*1024 : (c+1)*1024] {
				sum[c] += float64(v)
			}
		}
	}
	for c, want := range []float64{0.4914, 0.4822, 0.4465} {
		if got := sum[c] / (50000 * 1024); math.Abs(got-want) > 5e-4 {
			t.Errorf("train mean of channel %d = %.4f, want %.4f", c, got, want)
		}
	}

	ts, err := Open("cifar10:" + dir + "@test")
	if err != nil {
		t.Fatal(err)
	}
	if ts.Len() != 10000 {
		t.Fatalf("test Len %d", ts.Len())
	}
	for i := range 10000 {
		if ts.Label(i) != i%10 { // this copy's test order is round-robin by class
			t.Fatalf("test label %d = %d", i, ts.Label(i))
		}
	}
}

// The loaders with the real augmentation pipeline: deterministic across
// worker counts, and the eval loader applies Pipeline.Eval unchanged.
func TestLoadersWithAugmentPipeline(t *testing.T) {
	cfg, err := augment.Preset("cifar")
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := augment.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var _ Transform = pipe
	ds, err := Open(DefaultSpec)
	if err != nil {
		t.Fatal(err)
	}
	sub := subset{ds, 96}
	run := func(workers int) [][]float32 {
		l, err := NewPairLoader(sub, pipe, LoaderConfig{Batch: 16, Workers: workers, Seed: 5, Shuffle: true, DropLast: true})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]float32
		for b, err := range l.Epoch(2) {
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Views) != 2*16*3*32*32 {
				t.Fatalf("views %d", len(b.Views))
			}
			out = append(out, slices.Clone(b.Views))
		}
		return out
	}
	one, three := run(1), run(3)
	if len(one) != 6 {
		t.Fatalf("%d batches", len(one))
	}
	const vl = 3 * 32 * 32
	for i := range one {
		if !slices.Equal(one[i], three[i]) {
			t.Fatalf("batch %d differs between 1 and 3 workers", i)
		}
		for _, v := range one[i] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatal("non-finite view value")
			}
		}
		if slices.Equal(one[i][:vl], one[i][16*vl:17*vl]) {
			t.Errorf("batch %d: the two views of row 0 are identical", i)
		}
	}

	el, err := NewEvalLoader(sub, pipe, 40, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, vl)
	n := 0
	for b, err := range el.All() {
		if err != nil {
			t.Fatal(err)
		}
		for r, i := range b.Indices {
			img, _ := sub.Image(i)
			if err := pipe.Eval(want, img); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.Views[r*vl:(r+1)*vl], want) {
				t.Fatalf("eval row %d differs from Pipeline.Eval of image %d", r, i)
			}
		}
		n += b.N
	}
	if n != 96 {
		t.Errorf("eval covered %d images", n)
	}
}

// subset is the first n images of a dataset.
type subset struct {
	Dataset
	n int
}

func (s subset) Len() int { return s.n }
