package serve

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
)

// build indexes the folder at dir with emb into rundir and returns the
// index's embeddings and the progress log.
func build(t *testing.T, rundir, dir string, emb *Embedder) ([]float32, string) {
	t.Helper()
	spec := "folder:" + dir
	ds, err := data.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	ix, err := BuildIndex("set", spec, ds, emb, engine.Reference(), BuildOptions{RunDir: rundir, Batch: 8, Workers: 2, Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	return append([]float32(nil), ix.Embeddings()...), log.String()
}

func TestEmbeddingCache(t *testing.T) {
	e := testEnv(t)
	root := t.TempDir()
	rundir, pics := filepath.Join(root, "run"), filepath.Join(root, "pics")
	if err := writePNGs(pics, []string{"a", "b"}, 4, testSide, 5); err != nil {
		t.Fatal(err)
	}
	first, log := build(t, rundir, pics, e.emb)
	if !strings.Contains(log, "embedding 8 images") || !strings.Contains(log, "no cache yet") || !strings.Contains(log, "embedded 8/8 images") {
		t.Fatalf("first start: %s", log)
	}
	again, log := build(t, rundir, pics, e.emb)
	if !strings.Contains(log, "from the cache") || !slices.Equal(first, again) {
		t.Fatalf("second start did not use the cache or got other values: %s", log)
	}

	// Other weights (one parameter changed): stale.
	other, err := newTestEmbedder(engine.Reference(), 0.125, testSide)
	if err != nil {
		t.Fatal(err)
	}
	other.net.Params()[0].T.Data()[0] += 0.5
	if _, log = build(t, rundir, pics, other); !strings.Contains(log, "stale") {
		t.Fatalf("changed weights: %s", log)
	}
	// Back to the first weights: stale again (one cache per set and layer),
	// and the values are the first ones.
	if got, log := build(t, rundir, pics, e.emb); !strings.Contains(log, "stale") || !slices.Equal(got, first) {
		t.Fatalf("first weights again: %s", log)
	}

	// An image replaced in place (same name): stale.
	f := filepath.Join(pics, "a", "a_00.png")
	b, _ := os.ReadFile(filepath.Join(pics, "b", "b_00.png"))
	os.WriteFile(f, b, 0o644)
	os.Chtimes(f, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	changed, log := build(t, rundir, pics, e.emb)
	if !strings.Contains(log, "stale") || slices.Equal(changed, first) {
		t.Fatalf("changed image: %s", log)
	}

	// A damaged cache file is not used.
	npy, _ := cachePaths(rundir, "set", "h")
	raw, _ := os.ReadFile(npy)
	raw[len(raw)-3] ^= 0x40
	os.WriteFile(npy, raw, 0o644)
	got, log := build(t, rundir, pics, e.emb)
	if !strings.Contains(log, "checksum mismatch") || !slices.Equal(got, changed) {
		t.Fatalf("damaged cache: %s", log)
	}
	// A truncated one neither.
	os.WriteFile(npy, raw[:len(raw)/2], 0o644)
	if got, log = build(t, rundir, pics, e.emb); !strings.Contains(log, "truncated") || !slices.Equal(got, changed) {
		t.Fatalf("truncated cache: %s", log)
	}
	if _, log = build(t, rundir, pics, e.emb); !strings.Contains(log, "from the cache") {
		t.Fatalf("rewritten cache not used: %s", log)
	}
}
