package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/train"
)

// env is a server over a random-init tiny encoder and a folder of
// generated PNGs in three colour classes (so neighbours are meaningful).
type env struct {
	root, rundir, spec string
	ds                 data.Dataset
	emb                *Embedder
	backend            engine.Backend
	ix                 *Index
	raw                []float32 // the set's embeddings before normalisation
	srv                *Server
	ts                 *httptest.Server
}

var (
	envOnce sync.Once
	theEnv  *env
	envErr  error
)

const (
	testPerClass = 10
	testSide     = 12
	testUpload   = 1 << 20
)

// writePNGs writes class sub-folders of noisy single-colour images.
func writePNGs(dir string, classes []string, per, side int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	base := []color.RGBA{{220, 40, 40, 255}, {40, 200, 60, 255}, {50, 60, 220, 255}, {230, 220, 40, 255}}
	for ci, c := range classes {
		if err := os.MkdirAll(filepath.Join(dir, c), 0o755); err != nil {
			return err
		}
		for i := range per {
			img := image.NewRGBA(image.Rect(0, 0, side, side))
			b := base[ci%len(base)]
			for p := 0; p < len(img.Pix); p += 4 {
				j := func(v uint8) uint8 { return uint8(min(255, max(0, int(v)+rng.IntN(121)-60))) }
				img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = j(b.R), j(b.G), j(b.B), 255
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, img); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, c, fmt.Sprintf("%s_%02d.png", c, i)), buf.Bytes(), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// newTestEmbedder is a random-init ResNet-18 of the given width (CIFAR
// stem) for side x side images, on backend b.
func newTestEmbedder(b engine.Backend, width float64, side int) (*Embedder, error) {
	cfg := train.DefaultConfig()
	cfg.Width = width
	if err := cfg.Augment.Set("size", strconv.Itoa(side)); err != nil {
		return nil, err
	}
	acfg, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	m, err := train.NewModel(cfg)
	if err != nil {
		return nil, err
	}
	pipe, err := augment.New(acfg)
	if err != nil {
		return nil, err
	}
	return NewEmbedder(engine.NewTape(b), m.Encoder, pipe, "h"), nil
}

func testEnv(t testing.TB) *env {
	t.Helper()
	envOnce.Do(func() { theEnv, envErr = buildEnv() })
	if envErr != nil {
		t.Fatalf("test server: %v", envErr)
	}
	return theEnv
}

func buildEnv() (*env, error) {
	root, err := os.MkdirTemp("", "simclr-serve-test-")
	if err != nil {
		return nil, err
	}
	e := &env{root: root, rundir: filepath.Join(root, "run"), backend: engine.Reference()}
	if err := writePNGs(filepath.Join(root, "pics"), []string{"red", "green", "blue"}, testPerClass, testSide, 1); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(e.rundir, "checkpoints"), 0o755); err != nil {
		return nil, err
	}
	e.spec = "folder:" + filepath.Join(root, "pics")
	if e.ds, err = data.Open(e.spec); err != nil {
		return nil, err
	}
	// ResNet-18 width 1/8 on the Reference backend (deterministic, always present).
	if e.emb, err = newTestEmbedder(e.backend, 0.125, testSide); err != nil {
		return nil, err
	}
	if e.raw, err = e.emb.Set(e.ds, 8, 2, nil); err != nil {
		return nil, err
	}
	if e.ix, err = BuildIndex("pics", e.spec, e.ds, e.emb, e.backend, BuildOptions{RunDir: e.rundir, Batch: 8, Workers: 2}); err != nil {
		return nil, err
	}
	if e.srv, err = New(Config{RunDir: e.rundir, Source: "test encoder", Sets: []*Index{e.ix}, Embedder: e.emb, Loopback: true, MaxUpload: testUpload}); err != nil {
		return nil, err
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	return e, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if theEnv != nil {
		theEnv.ts.Close()
		theEnv.ix.Close()
		os.RemoveAll(theEnv.root)
	}
	os.Exit(code)
}

// do sends a request and returns the status and body.
func do(t testing.TB, method, url string, body []byte, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// getJSON requests url and decodes a 200 answer into v.
func getJSON(t testing.TB, method, url string, body []byte, v any) {
	t.Helper()
	code, b := do(t, method, url, body)
	if code != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", method, url, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s %s: %v in %s", method, url, err, b)
	}
}

// encodePNG encodes image i of ds as PNG bytes.
func encodePNG(t testing.TB, ds data.Dataset, i int) []byte {
	t.Helper()
	img, err := ds.Image(i)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img.ToNRGBA()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// syntheticSet is an in-memory labelled dataset of n generated 32x32
// images (nothing is stored: image i is computed from i), for indexes over
// synthetic embeddings and for measuring memory.
type syntheticSet int

func (s syntheticSet) Len() int             { return int(s) }
func (s syntheticSet) Label(i int) int      { return i % 10 }
func (s syntheticSet) NumClasses() int      { return 10 }
func (s syntheticSet) ClassNames() []string { return nil }
func (s syntheticSet) Name(i int) string    { return fmt.Sprintf("synthetic#%d", i) }
func (s syntheticSet) Image(i int) (*augment.Image, error) {
	img := augment.NewImage(32, 32)
	rng := rand.New(rand.NewPCG(uint64(i), 11))
	for p := range img.Pix {
		img.Pix[p] = rng.Float32()
	}
	return img, nil
}

// newServer serves srv on a test listener closed at the end of the test.
func newServer(t testing.TB, srv *Server) string {
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}
