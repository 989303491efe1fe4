package data

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simclr-go/simclr/augment"
)

// fakeDS is an in-memory dataset whose image i has every pixel equal to i,
// so a transform can tell which image it got; images in bad fail.
type fakeDS struct {
	n     int
	bad   map[int]bool
	delay time.Duration
	reads atomic.Int64
}

func (d *fakeDS) Len() int { return d.n }
func (d *fakeDS) Image(i int) (*augment.Image, error) {
	d.reads.Add(1)
	if d.delay > 0 {
		time.Sleep(d.delay)
	}
	if d.bad[i] {
		return nil, fmt.Errorf("img%03d.jpg: unexpected EOF", i)
	}
	img := augment.NewImage(2, 2)
	for k := range img.Pix {
		img.Pix[k] = float32(i)
	}
	return img, nil
}
func (d *fakeDS) Label(i int) int      { return i % 3 }
func (d *fakeDS) NumClasses() int      { return 3 }
func (d *fakeDS) ClassNames() []string { return []string{"a", "b", "c"} }
func (d *fakeDS) Name(i int) string    { return fmt.Sprintf("img%03d.jpg", i) }

// fakeTF writes, for each view, the source's code (pixel 0) in element 0,
// a draw from rng in element 1 (-1 for Eval) and a ramp in the rest.
type fakeTF struct {
	size   int
	failOn float32 // View fails on the image with this code (if >= 0)
}

func (f fakeTF) Size() int { return f.size }
func (f fakeTF) View(dst []float32, s augment.Source, rng *rand.Rand) error {
	if len(dst) != 3*f.size*f.size {
		return fmt.Errorf("dst has %d values", len(dst))
	}
	src, ok := s.(*augment.Image)
	if !ok {
		return fmt.Errorf("fakeTF: source is a %T, want the *augment.Image of fakeDS", s)
	}
	if src.Pix[0] == f.failOn {
		return errors.New("transform failed")
	}
	dst[0], dst[1] = src.Pix[0], float32(rng.Uint32())
	for k := 2; k < len(dst); k++ {
		dst[k] = dst[1] + float32(k)
	}
	return nil
}
func (f fakeTF) Eval(dst []float32, s augment.Source) error {
	src, ok := s.(*augment.Image)
	if !ok {
		return fmt.Errorf("fakeTF: source is a %T, want the *augment.Image of fakeDS", s)
	}
	dst[0], dst[1] = src.Pix[0], -1
	for k := 2; k < len(dst); k++ {
		dst[k] = src.Pix[0] * float32(k)
	}
	return nil
}

// collect runs one epoch and returns copies of its batches.
func collect(t *testing.T, l *PairLoader, epoch, start int) []PairBatch {
	t.Helper()
	var out []PairBatch
	for b, err := range l.EpochFrom(epoch, start) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, PairBatch{Views: slices.Clone(b.Views), N: b.N, Size: b.Size,
			Indices: slices.Clone(b.Indices), Labels: slices.Clone(b.Labels)})
	}
	return out
}

func newPair(t *testing.T, ds Dataset, cfg LoaderConfig) *PairLoader {
	t.Helper()
	l, err := NewPairLoader(ds, fakeTF{size: 3, failOn: -1}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPairLoaderShapesAndPairing(t *testing.T) {
	ds := &fakeDS{n: 50}
	l := newPair(t, ds, LoaderConfig{Batch: 8, Workers: 3, Seed: 1, Shuffle: true, DropLast: true})
	if l.NumBatches() != 6 {
		t.Fatalf("NumBatches %d", l.NumBatches())
	}
	batches := collect(t, l, 0, 0)
	if len(batches) != 6 {
		t.Fatalf("%d batches", len(batches))
	}
	const vl = 3 * 3 * 3
	seen := map[int]bool{}
	for _, b := range batches {
		if b.N != 8 || b.Size != 3 || len(b.Views) != 2*8*vl || len(b.Indices) != 8 || len(b.Labels) != 8 {
			t.Fatalf("batch shape N %d Size %d views %d", b.N, b.Size, len(b.Views))
		}
		for r := range b.N {
			v1, v2 := b.Views[r*vl:(r+1)*vl], b.Views[(b.N+r)*vl:(b.N+r+1)*vl]
			if int(v1[0]) != b.Indices[r] || int(v2[0]) != b.Indices[r] {
				t.Fatalf("row %d and %d come from images %v and %v, want both %d", r, b.N+r, v1[0], v2[0], b.Indices[r])
			}
			if v1[1] == v2[1] {
				t.Errorf("the two views of image %d drew the same randomness", b.Indices[r])
			}
			if b.Labels[r] != b.Indices[r]%3 {
				t.Errorf("label of %d = %d", b.Indices[r], b.Labels[r])
			}
			if seen[b.Indices[r]] {
				t.Errorf("image %d twice in one epoch", b.Indices[r])
			}
			seen[b.Indices[r]] = true
		}
	}
	if len(seen) != 48 {
		t.Errorf("%d distinct images, want 48 (last partial batch of 2 dropped)", len(seen))
	}
	if st := l.Stats(); st.Batches != 6 || st.Skipped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestPairLoaderDeterminism(t *testing.T) {
	ds := &fakeDS{n: 37}
	cfg := LoaderConfig{Batch: 5, Workers: 1, Seed: 42, Shuffle: true, DropLast: true}
	one := collect(t, newPair(t, ds, cfg), 3, 0)
	cfg.Workers, cfg.Prefetch = 4, 5
	four := collect(t, newPair(t, ds, cfg), 3, 0)
	if len(one) != 7 || len(one) != len(four) {
		t.Fatalf("%d vs %d batches", len(one), len(four))
	}
	for i := range one {
		if !slices.Equal(one[i].Views, four[i].Views) || !slices.Equal(one[i].Indices, four[i].Indices) {
			t.Fatalf("batch %d differs between 1 and 4 workers", i)
		}
	}
	// Resuming mid-epoch gives the same batches.
	l := newPair(t, ds, cfg)
	tail := collect(t, l, 3, 4)
	if len(tail) != 3 {
		t.Fatalf("EpochFrom(3, 4): %d batches", len(tail))
	}
	for i := range tail {
		if !slices.Equal(tail[i].Views, one[4+i].Views) || !slices.Equal(tail[i].Indices, one[4+i].Indices) {
			t.Fatalf("resumed batch %d differs", 4+i)
		}
	}
	if len(collect(t, l, 3, 7)) != 0 {
		t.Error("EpochFrom at the end should yield nothing")
	}
	for _, err := range l.EpochFrom(3, 8) {
		wantErr(t, err, "start batch 8 outside [0,7]")
	}
	// Another epoch: another order and other views; another seed likewise.
	other := collect(t, l, 4, 0)
	if slices.Equal(other[0].Indices, one[0].Indices) {
		t.Error("epochs 3 and 4 start with the same images")
	}
	cfg.Seed = 43
	if reseeded := collect(t, newPair(t, ds, cfg), 3, 0); slices.Equal(reseeded[0].Indices, one[0].Indices) {
		t.Error("seeds 42 and 43 give the same order")
	}
	// The same image in two epochs gets different views.
	views := map[int]float32{}
	for _, b := range one {
		for r, i := range b.Indices {
			views[i] = b.Views[r*27+1]
		}
	}
	same := 0
	for _, b := range other {
		for r, i := range b.Indices {
			if v, ok := views[i]; ok && v == b.Views[r*27+1] {
				same++
			}
		}
	}
	if same > 0 {
		t.Errorf("%d images got the same view in epochs 3 and 4", same)
	}
}

func TestPairLoaderOrderAndDropLast(t *testing.T) {
	ds := &fakeDS{n: 10}
	l := newPair(t, ds, LoaderConfig{Batch: 4, Workers: 2})
	b := collect(t, l, 0, 0)
	if len(b) != 3 || b[2].N != 2 || len(b[2].Views) != 2*2*27 {
		t.Fatalf("without DropLast: %d batches, last N %d", len(b), b[len(b)-1].N)
	}
	if got := append(append(b[0].Indices, b[1].Indices...), b[2].Indices...); !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("unshuffled order %v", got)
	}
	// Pairing also holds in the partial batch: view 2 rows start at N.
	if b[2].Views[2*27] != 8 || b[2].Views[3*27] != 9 {
		t.Errorf("partial batch view-2 rows: %v %v", b[2].Views[2*27], b[2].Views[3*27])
	}
	l = newPair(t, ds, LoaderConfig{Batch: 4, Workers: 2, DropLast: true, Shuffle: true})
	if b := collect(t, l, 0, 0); len(b) != 2 {
		t.Errorf("with DropLast: %d batches", len(b))
	}
	for e := range 3 {
		o := l.Order(e)
		s := slices.Clone(o)
		slices.Sort(s)
		if !slices.Equal(s, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("order of epoch %d is not a permutation: %v", e, o)
		}
	}
	if _, err := NewPairLoader(ds, fakeTF{size: 3}, LoaderConfig{Batch: 11, DropLast: true}); err == nil {
		t.Error("a batch larger than the dataset with DropLast should be refused")
	}
	if _, err := NewPairLoader(ds, fakeTF{size: 3}, LoaderConfig{Batch: 0}); err == nil {
		t.Error("batch 0 should be refused")
	}
	if _, err := NewPairLoader(&fakeDS{}, fakeTF{size: 3}, LoaderConfig{Batch: 1}); err == nil {
		t.Error("an empty dataset should be refused")
	}
}

// The shuffle is uniform enough: over many epochs each image lands in the
// first batch about as often as expected.
func TestShuffleSpread(t *testing.T) {
	const n, epochs = 20, 2000
	first := make([]int, n)
	for e := range epochs {
		first[epochOrder(n, 7, e, true)[0]]++
	}
	for i, c := range first {
		if c < epochs/n/2 || c > epochs/n*2 {
			t.Errorf("image %d first in %d of %d epochs (expected about %d)", i, c, epochs, epochs/n)
		}
	}
}

func TestPairLoaderSkipBad(t *testing.T) {
	bad := map[int]bool{3: true, 7: true, 8: true}
	ds := &fakeDS{n: 24, bad: bad}
	cfg := LoaderConfig{Batch: 6, Workers: 3, Seed: 9, Shuffle: true, DropLast: true, SkipBad: true}
	l := newPair(t, ds, cfg)
	a := collect(t, l, 0, 0)
	if len(a) != 4 {
		t.Fatalf("%d batches", len(a))
	}
	for _, b := range a {
		if b.N != 6 {
			t.Fatalf("batch of %d, want full batches", b.N)
		}
		for r, i := range b.Indices {
			if bad[i] {
				t.Fatalf("bad image %d delivered", i)
			}
			if int(b.Views[r*27]) != i || int(b.Views[(6+r)*27]) != i {
				t.Fatalf("row %d: views of %v/%v, Indices says %d", r, b.Views[r*27], b.Views[(6+r)*27], i)
			}
		}
	}
	st := l.Stats()
	if st.Skipped != 3 || len(st.SkippedFiles) != 3 {
		t.Fatalf("stats %+v, want 3 skipped", st)
	}
	for _, name := range []string{"img003.jpg", "img007.jpg", "img008.jpg"} {
		if !slices.ContainsFunc(st.SkippedFiles, func(s string) bool { return strings.Contains(s, name) }) {
			t.Errorf("SkippedFiles %q lacks %s", st.SkippedFiles, name)
		}
	}
	// Same replacements with another worker count.
	cfg.Workers = 1
	l1 := newPair(t, ds, cfg)
	b := collect(t, l1, 0, 0)
	for i := range a {
		if !slices.Equal(a[i].Views, b[i].Views) || !slices.Equal(a[i].Indices, b[i].Indices) {
			t.Fatalf("batch %d with SkipBad differs between 3 and 1 workers", i)
		}
	}
	// A known bad image is not read again: the next epoch reads each good
	// image once and one replacement for each bad one.
	reads := ds.reads.Load()
	collect(t, l1, 1, 0)
	if got := ds.reads.Load() - reads; got != 24 {
		t.Errorf("%d reads in the second epoch, want 24", got)
	}
	if st := l1.Stats(); st.Skipped != 6 || len(st.SkippedFiles) != 3 {
		t.Errorf("after two epochs: %+v, want 6 skips of 3 files", st)
	}

	// Without SkipBad the first bad image stops the iteration, naming it.
	cfg.SkipBad = false
	l = newPair(t, ds, cfg)
	var n int
	var gotErr error
	for b, err := range l.Epoch(0) {
		if err != nil {
			gotErr = err
			if b != nil {
				t.Error("error yielded with a batch")
			}
			continue
		}
		n++
	}
	wantErr(t, gotErr, "img00", "unexpected EOF")
	if n >= 4 {
		t.Errorf("%d batches delivered despite the error", n)
	}
	if l.Stats().Batches != n {
		t.Errorf("Stats.Batches %d, delivered %d", l.Stats().Batches, n)
	}

	// All bad: SkipBad gives up with an error rather than looping.
	all := map[int]bool{}
	for i := range 24 {
		all[i] = true
	}
	cfg.SkipBad = true
	l = newPair(t, &fakeDS{n: 24, bad: all}, cfg)
	for _, err := range l.Epoch(0) {
		wantErr(t, err, "too many bad images")
	}
}

func TestPairLoaderTransformError(t *testing.T) {
	l, err := NewPairLoader(&fakeDS{n: 30}, fakeTF{size: 2, failOn: 13}, LoaderConfig{Batch: 4, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for b, err := range l.Epoch(0) {
		if err != nil {
			wantErr(t, err, "img013.jpg", "transform failed")
			break
		}
		n++
		if b.Indices[0] > 12 {
			t.Fatalf("batch starting at %d delivered after the failing image", b.Indices[0])
		}
	}
	if n != 3 {
		t.Errorf("%d batches before the error, want 3", n)
	}
}

// Breaking out of the loop stops every goroutine before the loop ends.
func TestPairLoaderNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	l := newPair(t, &fakeDS{n: 1000}, LoaderConfig{Batch: 10, Workers: 4, Prefetch: 3, Shuffle: true})
	for range 5 {
		n := 0
		for _, err := range l.Epoch(0) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 2 {
				break
			}
		}
	}
	for range l.Epoch(1) { // early exit from the first batch too
		break
	}
	var now int
	for range 100 { // exiting goroutines may take a moment to be reaped
		if now = runtime.NumGoroutine(); now <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("%d goroutines before, %d after breaking out", before, now)
}

// WaitTime measures the consumer's wait: with one worker and a slow
// dataset, every batch is waited for in full.
func TestPairLoaderWaitTime(t *testing.T) {
	ds := &fakeDS{n: 16, delay: 2 * time.Millisecond}
	l := newPair(t, ds, LoaderConfig{Batch: 4, Workers: 1})
	collect(t, l, 0, 0)
	st := l.Stats()
	if st.Batches != 4 {
		t.Fatalf("Batches %d", st.Batches)
	}
	// 16 reads of >= 2 ms done one after another, none overlapped with work.
	if st.WaitTime < 30*time.Millisecond {
		t.Errorf("WaitTime %v, want >= 32ms", st.WaitTime)
	}
}

// Memory does not grow with the number of batches: buffers are recycled.
func TestPairLoaderRecyclesBuffers(t *testing.T) {
	l := newPair(t, &fakeDS{n: 400}, LoaderConfig{Batch: 4, Workers: 2, Prefetch: 2})
	seen := map[*float32]bool{}
	for e := range 2 {
		for b, err := range l.Epoch(e) {
			if err != nil {
				t.Fatal(err)
			}
			seen[&b.Views[0]] = true
		}
	}
	if len(seen) > 3 {
		t.Errorf("%d distinct view buffers for 200 batches, want at most Prefetch+1 = 3", len(seen))
	}
}

func TestEvalLoader(t *testing.T) {
	ds := &fakeDS{n: 11}
	l, err := NewEvalLoader(ds, fakeTF{size: 2}, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for b, err := range l.All() {
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Views) != b.N*12 || b.Size != 2 || len(b.Labels) != b.N {
			t.Fatalf("shape N %d views %d", b.N, len(b.Views))
		}
		for r, i := range b.Indices {
			if b.Views[r*12] != float32(i) || b.Views[r*12+1] != -1 || b.Views[r*12+5] != float32(5*i) {
				t.Fatalf("row %d is not the eval view of image %d", r, i)
			}
			if b.Labels[r] != i%3 {
				t.Errorf("label %d", b.Labels[r])
			}
		}
		idx = append(idx, b.Indices...)
	}
	if !slices.Equal(idx, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Errorf("eval order %v (last partial batch must be kept)", idx)
	}

	bad := &fakeDS{n: 11, bad: map[int]bool{1: true, 9: true}}
	l, _ = NewEvalLoader(bad, fakeTF{size: 2}, 4, 2)
	for _, err := range l.All() {
		if err != nil {
			wantErr(t, err, "img001.jpg")
			break
		}
		t.Fatal("first batch holds a bad image and must fail")
	}
	l.SkipBad = true
	idx = idx[:0]
	for b, err := range l.All() {
		if err != nil {
			t.Fatal(err)
		}
		for r, i := range b.Indices {
			if b.Views[r*12] != float32(i) {
				t.Fatalf("compacted row %d holds image %v, Indices says %d", r, b.Views[r*12], i)
			}
		}
		idx = append(idx, b.Indices...)
	}
	if !slices.Equal(idx, []int{0, 2, 3, 4, 5, 6, 7, 8, 10}) {
		t.Errorf("eval with SkipBad: %v", idx)
	}
	if st := l.Stats(); st.Skipped != 2 || len(st.SkippedFiles) != 2 {
		t.Errorf("stats %+v", st)
	}
}
