package serve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simclr-go/simclr/train"
)

// The figures of issue 11: search over 100k x 512 embeddings, 50
// concurrent searches against one, embedding one upload with ResNet-18
// width 1/4, and the server's memory with a 100k-image set (synthetic
// images and random embeddings: the sizes are what matter).
//
//	go test ./serve -run '^$' -bench . -benchtime 20x

const benchN, benchDim = 100_000, 512

var (
	bigOnce sync.Once
	bigSrv  *Server
	bigURL  string
	bigIx   *Index
	bigErr  error
)

// bigServer is a server over a synthetic 100k-image set with 512-d random
// embeddings, on the fastest backend.
func bigServer(b *testing.B) (*Index, string) {
	bigOnce.Do(func() {
		be, err := train.NewBackend(0)
		if err != nil {
			bigErr = err
			return
		}
		feats := make([]float32, benchN*benchDim)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range feats {
			feats[i] = float32(rng.NormFloat64())
		}
		if bigIx, err = NewIndex("big", "synthetic", syntheticSet(benchN), feats, benchDim, be); err != nil {
			bigErr = err
			return
		}
		emb, err := newTestEmbedder(be, 1, 32) // h is 512-d at full width
		if err != nil {
			bigErr = err
			return
		}
		if bigSrv, err = New(Config{RunDir: b.TempDir(), Sets: []*Index{bigIx}, Embedder: emb, Loopback: true, MaxUpload: DefaultMaxUpload}); err != nil {
			bigErr = err
			return
		}
		bigURL = httptest.NewServer(bigSrv.Handler()).URL
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigIx, bigURL
}

func rssMiB() (rss, peak float64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb float64
		if n, _ := fmt.Sscanf(strings.TrimPrefix(sc.Text(), "VmRSS:"), "%f", &kb); n == 1 && strings.HasPrefix(sc.Text(), "VmRSS:") {
			rss = kb / 1024
		}
		if n, _ := fmt.Sscanf(strings.TrimPrefix(sc.Text(), "VmHWM:"), "%f", &kb); n == 1 && strings.HasPrefix(sc.Text(), "VmHWM:") {
			peak = kb / 1024
		}
	}
	return rss, peak
}

// BenchmarkSearch100k: one query against 100k x 512 (MatMul on the
// backend, then top-10), called directly; also reports the process RSS
// holding the set.
func BenchmarkSearch100k(b *testing.B) {
	ix, _ := bigServer(b)
	q := ix.Vector(17)
	b.ResetTimer()
	for b.Loop() {
		if _, err := ix.Search(context.Background(), q, 10, 17); err != nil {
			b.Fatal(err)
		}
	}
	rss, peak := rssMiB()
	b.ReportMetric(rss, "rss_MiB")
	b.ReportMetric(peak, "peak_rss_MiB")
}

// timedGet times one GET.
func timedGet(b *testing.B, url string) time.Duration {
	t := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return time.Since(t)
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkSearchHTTPConcurrent50: each iteration sends one search request
// alone, then 50 at once, over HTTP; it reports both median latencies and
// their ratio (issue 11: at most 10).
func BenchmarkSearchHTTPConcurrent50(b *testing.B) {
	_, url := bigServer(b)
	u := func(i int) string { return fmt.Sprintf("%s/api/search?set=big&id=%d&k=10", url, i) }
	timedGet(b, u(0)) // warm up
	var single, conc []time.Duration
	var mu sync.Mutex
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		single = append(single, timedGet(b, u(i)))
		var wg sync.WaitGroup
		for g := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := timedGet(b, u(i*50+g))
				mu.Lock()
				conc = append(conc, d)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	s, c := median(single), median(conc)
	b.ReportMetric(float64(s.Microseconds())/1000, "single_median_ms")
	b.ReportMetric(float64(c.Microseconds())/1000, "concurrent50_median_ms")
	b.ReportMetric(float64(c)/float64(s), "median_ratio")
}

// BenchmarkEmbedUpload: POST /api/embed of one 32x32 PNG with a
// ResNet-18 width 1/4 encoder (decode, evaluation view, forward, JSON).
func BenchmarkEmbedUpload(b *testing.B) {
	be, err := train.NewBackend(0)
	if err != nil {
		b.Fatal(err)
	}
	emb, err := newTestEmbedder(be, 0.25, 32)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{RunDir: b.TempDir(), Embedder: emb, Loopback: true, MaxUpload: DefaultMaxUpload})
	if err != nil {
		b.Fatal(err)
	}
	url := newServer(b, srv)
	img, _ := syntheticSet(1).Image(0)
	var buf bytes.Buffer
	png.Encode(&buf, img.ToNRGBA())
	body := buf.Bytes()
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Post(url+"/api/embed", "image/png", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
