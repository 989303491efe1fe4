package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/eval"
)

// linkedFolder makes dir/c0 ... dir/c{classes-1} holding n images in all,
// every one a hard link of the same 8x8 PNG (or a copy of its bytes where
// the file system has no hard links): a large folder dataset made cheaply.
func linkedFolder(t testing.TB, dir string, n, classes int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = uint8(37 * i)
	}
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, ".src.png") // dot files are not part of the dataset
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	link := true
	for c := range classes {
		if err := os.MkdirAll(filepath.Join(dir, "c"+strconv.Itoa(c)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		p := filepath.Join(dir, "c"+strconv.Itoa(i%classes), fmt.Sprintf("%06d.png", i))
		if link {
			if err := os.Link(src, p); err == nil {
				continue
			}
			link = false
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// heapPeak runs fn and returns how far the Go heap's live set rose above
// its level just before, and the same for the process RSS. The GC is made
// frequent and the live bytes each GC cycle found are recorded. A cycle
// also counts as live whatever was allocated while it marked (the
// allocation rate, not the live set), which shows as isolated spikes;
// taking the largest median of five consecutive cycles drops those while
// following any real, lasting growth.
func heapPeak(t testing.TB, fn func()) (live, rss int64) {
	t.Helper()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	runtime.GC()
	runtime.GC()
	metrics.Read(sample)
	base, baseRSS := int64(sample[0].Value.Uint64()), rssBytes()
	lastCycle := sample[1].Value.Uint64()
	var cycles []int64
	peakRSS := baseRSS
	stop, done := make(chan struct{}), make(chan struct{})
	poll := func() {
		metrics.Read(sample)
		if c := sample[1].Value.Uint64(); c != lastCycle {
			lastCycle = c
			cycles = append(cycles, int64(sample[0].Value.Uint64()))
		}
		peakRSS = max(peakRSS, rssBytes())
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				poll()
			}
		}
	}()
	fn()
	close(stop)
	<-done
	if len(cycles) < 5 {
		t.Fatalf("only %d GC cycles while fn ran: too few to measure its live heap", len(cycles))
	}
	peak := base
	w := make([]int64, 5)
	for i := 0; i+5 <= len(cycles); i++ {
		copy(w, cycles[i:i+5])
		slices.Sort(w)
		peak = max(peak, w[2])
	}
	return peak - base, peakRSS - baseRSS
}

// rssBytes is the resident set size from /proc/self/statm (0 elsewhere).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int64
	fmt.Sscan(string(b), &size, &res)
	return res * int64(os.Getpagesize())
}

// TestEmbedStreamsBoundedMemory runs 'simclr embed' in-process (folder
// dataset -> eval loader -> encoder -> .npy writer) on a small and a large
// folder of identical 8x8 images and measures the peak live heap of each
// run. What may grow with the dataset is the folder's file index (a path
// string and a label per image, which every command needs); holding the
// embeddings would add a 4*dim-byte row per image on top. A control run
// through knn's embedAll, which does hold them, shows that the measurement
// sees such growth.
//
// Default sizes: 2k and 20k images; SIMCLR_EMBED_STREAM_BIG=1 (ignored
// with -short) uses 10k and 100k (~2 minutes).
func TestEmbedStreamsBoundedMemory(t *testing.T) {
	small, big := 4096, 20480
	if os.Getenv("SIMCLR_EMBED_STREAM_BIG") != "" && !testing.Short() {
		small, big = 10240, 102400
	}
	const batch = "1024"
	fx := tinyRun(t)
	root := t.TempDir()
	type figures struct{ index, embed, control, rss int64 }
	got := map[int]figures{}
	dim := 0
	for _, n := range []int{small, big} {
		dir := filepath.Join(root, strconv.Itoa(n))
		linkedFolder(t, dir, n, 10)
		spec := "folder:" + dir
		var f figures
		// What the dataset's file index keeps for n files.
		f.index = retained(func() any {
			ds, err := data.Open(spec)
			if err != nil {
				t.Fatal(err)
			}
			return ds
		})
		out := filepath.Join(root, fmt.Sprintf("e%d.npy", n))
		var stdout, stderr string
		var err error
		f.embed, f.rss = heapPeak(t, func() {
			stdout, stderr, err = runCmd(t, newEmbedCmd, "embed", "--run", fx.run, "--data", spec, "--out", out, "--eval-batch", batch)
		})
		if err != nil {
			t.Fatalf("embed %d images: %v\n%s", n, err, stderr)
		}
		r := jsonLine(t, stdout)
		if r["rows"] != float64(n) {
			t.Fatalf("embed of %d images reports %v rows", n, r["rows"])
		}
		dim = int(r["dim"].(float64))
		checkNPY(t, out, n, dim)
		os.Remove(out)

		// Control: the same images through knn's path, which keeps every
		// row; once is enough to show that held rows register.
		if n == small {
			f.control, _ = heapPeak(t, func() {
				fl := &runFlags{run: fx.run, batch: 1024}
				lr, err := openRun(fl, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				ds, err := openData(spec, "train")
				if err != nil {
					t.Fatal(err)
				}
				x, _, err := lr.embedAll(labeledSet{Spec: spec, DS: ds, Label: ds.Label}, fl, io.Discard)
				if err != nil || len(x) != n*dim {
					t.Fatalf("control: %d values, %v", len(x), err)
				}
			})
		}
		got[n] = f
		t.Logf("%d images: file index %.2f MB; embed: peak live heap +%.2f MB, RSS +%.2f MB", n, mb(f.index), mb(f.embed), mb(f.rss))
	}
	row := float64(4 * dim)
	held := float64(got[small].control - got[small].embed)
	t.Logf("%d images held by the control: +%.2f MB over embed (%.0f B per image; a row is %.0f B)", small, mb(int64(held)), held/float64(small), row)
	// The control lacks embed's file writer buffers (~0.3 MB), so allow
	// for that: half the rows must show.
	if held < 0.5*row*float64(small) {
		t.Errorf("the control, which holds %d rows of %.0f B, peaks only %.2f MB above embed: the measurement cannot see held rows (or embed holds them too)", small, row, mb(int64(held)))
	}
	extra := float64(big - small)
	index := float64(got[big].index-got[small].index) / extra
	embed := float64(got[big].embed-got[small].embed) / extra
	t.Logf("growth per extra image: file index %.0f B, embed peak %.0f B", index, embed)
	if embed-index > row/4 {
		t.Errorf("embed's peak live heap grows by %.0f B per image beyond the file index's %.0f B (a row is %.0f B): it is not streaming", embed, index, row)
	}
}

// retained is the live heap that the value made by fn keeps.
func retained(fn func() any) int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() int64 {
		runtime.GC()
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	b := read()
	v := fn()
	a := read()
	runtime.KeepAlive(v)
	return a - b
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func jsonLine(t *testing.T, stdout string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("last stdout line is not JSON: %v\n%s", err, stdout)
	}
	return m
}

// checkNPY checks the file's shape and that every row is the same (the
// images are all one file).
func checkNPY(t *testing.T, path string, n, dim int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, x, err := eval.ReadNPYFloat32(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Shape) != 2 || h.Shape[0] != n || h.Shape[1] != dim {
		t.Fatalf("%s: shape %v, want [%d %d]", path, h.Shape, n, dim)
	}
	for i := 1; i < n; i++ {
		for j := range dim {
			if x[i*dim+j] != x[j] {
				t.Fatalf("%s: row %d differs from row 0 at %d (%v vs %v) though the images are identical", path, i, j, x[i*dim+j], x[j])
			}
		}
	}
}
