package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/train"
)

// oracle ranks the rows of raw (n x d) by float64 cosine similarity with
// q, best first, ties to the lower index, leaving out exclude.
func oracle(raw []float32, n, d int, q []float32, exclude int) ([]int, []float64) {
	nq := 0.0
	for _, v := range q {
		nq += float64(v) * float64(v)
	}
	sims := make([]float64, n)
	for i := range n {
		dot, nx := 0.0, 0.0
		for j, v := range raw[i*d : (i+1)*d] {
			dot += float64(v) * float64(q[j])
			nx += float64(v) * float64(v)
		}
		sims[i] = dot / math.Sqrt(nq*nx)
	}
	var ids []int
	for i := range n {
		if i != exclude {
			ids = append(ids, i)
		}
	}
	sort.SliceStable(ids, func(a, b int) bool { return sims[ids[a]] > sims[ids[b]] })
	return ids, sims
}

// checkNeighbors compares a result with the oracle: at every rank the
// score is the oracle's, and the id returned has the oracle score of that
// rank (ids may differ only between images whose float64 scores agree to
// within tol, which float32 arithmetic cannot order).
func checkNeighbors(t *testing.T, what string, got []Neighbor, ids []int, sims []float64, k, exclude int, tol float64) {
	t.Helper()
	if len(got) != k {
		t.Fatalf("%s: %d neighbours, want %d", what, len(got), k)
	}
	seen := map[int]bool{}
	for r, nb := range got {
		if nb.ID == exclude || seen[nb.ID] {
			t.Fatalf("%s: rank %d: id %d is the query or repeated", what, r, nb.ID)
		}
		seen[nb.ID] = true
		want := sims[ids[r]]
		if math.Abs(nb.Score-want) > tol || math.Abs(sims[nb.ID]-want) > tol {
			t.Fatalf("%s: rank %d: id %d score %.7f (oracle %.7f); oracle has id %d score %.7f", what, r, nb.ID, nb.Score, sims[nb.ID], ids[r], want)
		}
		if r > 0 && nb.Score > got[r-1].Score {
			t.Fatalf("%s: scores not best first: %v", what, got)
		}
	}
}

func TestSearchByIDMatchesFloat64Oracle(t *testing.T) {
	e := testEnv(t)
	n, d := e.ds.Len(), e.emb.Dim()
	for _, q := range []int{0, 7, n - 1} {
		var res searchResult
		getJSON(t, "GET", fmt.Sprintf("%s/api/search?set=pics&id=%d&k=5", e.ts.URL, q), nil, &res)
		ids, sims := oracle(e.raw, n, d, e.raw[q*d:(q+1)*d], q)
		checkNeighbors(t, fmt.Sprintf("query %d", q), res.Neighbors, ids, sims, 5, q, 1e-5)
		// Labels, names and precision@k follow the dataset.
		hit := 0
		for _, nb := range res.Neighbors {
			if nb.Label == nil || *nb.Label != e.ds.Label(nb.ID) || nb.Name != e.ds.Name(nb.ID) || nb.Class != e.ds.ClassNames()[*nb.Label] {
				t.Fatalf("neighbour %+v: want label %d name %s", nb, e.ds.Label(nb.ID), e.ds.Name(nb.ID))
			}
			if *nb.Label == e.ds.Label(q) {
				hit++
			}
		}
		if res.PrecisionAtK == nil || *res.PrecisionAtK != float64(hit)/5 || res.QueryLabel == nil || *res.QueryLabel != e.ds.Label(q) {
			t.Fatalf("query %d: precision@k %v query label %v, want %v and %d", q, res.PrecisionAtK, res.QueryLabel, float64(hit)/5, e.ds.Label(q))
		}
	}
}

// TestIndexExactOrder checks the ids themselves against the oracle on
// random features, whose scores are far apart compared with float32
// rounding, with both product paths this build has: gonum's GEMM (for the
// untuned reference backend) and the tuned backend's.
func TestIndexExactOrder(t *testing.T) {
	const n, d, k = 700, 48, 12
	rng := rand.New(rand.NewPCG(3, 4))
	raw := make([]float32, n*d)
	for i := range raw {
		raw[i] = float32(rng.NormFloat64())
	}
	backends := []engine.Backend{engine.Reference()}
	if b, err := train.NewBackend(1); err == nil && b.Caps().Tuned {
		backends = append(backends, b)
	}
	e := testEnv(t)
	for _, b := range backends {
		ix, err := NewIndex("rand", "synthetic", syntheticSet(n), append([]float32(nil), raw...), d, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []int{0, 123, n - 1} {
			got, err := ix.Search(context.Background(), raw[q*d:(q+1)*d], k, q)
			if err != nil {
				t.Fatal(err)
			}
			ids, sims := oracle(raw, n, d, raw[q*d:(q+1)*d], q)
			for r := range k {
				if got[r].ID != ids[r] || math.Abs(got[r].Score-sims[ids[r]]) > 1e-5 {
					t.Fatalf("%s: query %d rank %d: got id %d (%.6f), oracle id %d (%.6f)", b.Name(), q, r, got[r].ID, got[r].Score, ids[r], sims[ids[r]])
				}
			}
		}
		ix.Close()
	}
	_ = e
}

// TestTopKTiesAndExclusion: the one-sweep top-k of every column of an
// n x m score matrix (many ties, NaNs, an excluded row) against sorting.
func TestTopKTiesAndExclusion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n, m := 1+rng.IntN(60), 1+rng.IntN(5)
		s := make([]float32, n*m)
		for i := range s {
			s[i] = float32(rng.IntN(5)) // many ties
			if rng.IntN(20) == 0 {
				s[i] = float32(math.NaN())
			}
		}
		heaps := make([]*topHeap, m)
		ks, exs := make([]int, m), make([]int, m)
		for j := range m {
			ks[j], exs[j] = 1+rng.IntN(n), rng.IntN(n+1)-1
			heaps[j] = newTopHeap(ks[j], exs[j])
		}
		sweep(s, n, m, heaps)
		for j := range m {
			var want []int
			for i := range n {
				if v := s[i*m+j]; i != exs[j] && v == v {
					want = append(want, i)
				}
			}
			sort.SliceStable(want, func(a, b int) bool { return s[want[a]*m+j] > s[want[b]*m+j] })
			want = want[:min(ks[j], len(want))]
			got, sc := heaps[j].sorted()
			if !slices.Equal(got, want) {
				t.Fatalf("trial %d column %d (k %d, exclude %d): got %v, want %v", trial, j, ks[j], exs[j], got, want)
			}
			for r, i := range got {
				if sc[r] != s[i*m+j] {
					t.Fatalf("trial %d: score of %d is %v, want %v", trial, i, sc[r], s[i*m+j])
				}
			}
		}
	}
}

func TestSearchUploadAndEmbed(t *testing.T) {
	e := testEnv(t)
	n, d := e.ds.Len(), e.emb.Dim()
	const q = 12
	body := encodePNG(t, e.ds, q)
	var em struct {
		Layer     string    `json:"layer"`
		Embedding []float32 `json:"embedding"`
	}
	getJSON(t, "POST", e.ts.URL+"/api/embed", body, &em)
	if em.Layer != "h" || len(em.Embedding) != d {
		t.Fatalf("embed: layer %q, %d values; want h and %d", em.Layer, len(em.Embedding), d)
	}
	// The PNG holds the same 8-bit pixels as the file, so its embedding
	// is the indexed one.
	for j, v := range em.Embedding {
		if math.Abs(float64(v-e.raw[q*d+j])) > 1e-4*(1+math.Abs(float64(v))) {
			t.Fatalf("embedding[%d] = %g, the set's image %d has %g", j, v, q, e.raw[q*d+j])
		}
	}
	var res searchResult
	getJSON(t, "POST", e.ts.URL+"/api/search?set=pics&k=4", body, &res)
	ids, sims := oracle(e.raw, n, d, em.Embedding, -1)
	checkNeighbors(t, "upload", res.Neighbors, ids, sims, 4, -1, 1e-5)
	if res.Neighbors[0].ID != q || math.Abs(res.Neighbors[0].Score-1) > 1e-5 || res.PrecisionAtK != nil {
		t.Fatalf("upload of image %d: first neighbour %+v, precision %v; want itself with score 1 and no precision", q, res.Neighbors[0], res.PrecisionAtK)
	}
}

func TestImages(t *testing.T) {
	e := testEnv(t)
	code, b := do(t, "GET", e.ts.URL+"/api/images/pics/4", nil)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	m, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := e.ds.Image(4)
	if m.Bounds().Dx() != want.W || m.Bounds().Dy() != want.H {
		t.Fatalf("image is %v, want %dx%d", m.Bounds(), want.W, want.H)
	}
	for y := range want.H {
		for x := range want.W {
			r, _, _, _ := m.At(x, y).RGBA()
			if w := math.Round(float64(want.Pix[y*want.W+x]) * 255); math.Abs(float64(r>>8)-w) > 0 {
				t.Fatalf("pixel (%d,%d) red %d, want %v", x, y, r>>8, w)
			}
		}
	}
	code, b = do(t, "GET", e.ts.URL+"/api/images/pics/4?max=8", nil)
	if m, err = png.Decode(bytes.NewReader(b)); code != 200 || err != nil || m.Bounds().Dx() != 8 {
		t.Fatalf("thumbnail: status %d, err %v", code, err)
	}
}

// TestBadInput: every bad request gets its 4xx with a JSON error.
func TestBadInput(t *testing.T) {
	e := testEnv(t)
	bomb := pngBomb(100000, 100000)
	jbomb := jpegBomb(t, 60000, 60000)
	huge := bytes.Repeat([]byte{0xFF}, testUpload+1)
	img := encodePNG(t, e.ds, 0)
	cases := []struct {
		method, path string
		body         []byte
		code         int
		msg          string
	}{
		{"GET", "/api/images/../../etc/passwd", nil, 404, "not found"},
		{"GET", "/api/images/pics/../../../etc/passwd", nil, 404, "not found"},
		{"GET", "/api/images/pics/..%2f..%2fetc%2fpasswd", nil, 404, "not found"},
		{"GET", "/api/images/..%2f..%2fetc/0", nil, 404, "not found"},
		{"GET", "/api/images/pics%2f..%2f..%2fx/0", nil, 404, "not found"},
		{"GET", "/api/images/pics%2fx/0", nil, 404, "no set"},
		{"GET", "/static/../serve.go", nil, 404, "not found"},
		{"GET", "/api/images//etc/passwd", nil, 404, "not found"},
		{"GET", "/api/images/pics/-1", nil, 404, "no image"},
		{"GET", "/api/images/pics/30", nil, 404, "no image"},
		{"GET", "/api/images/pics/01", nil, 404, "no image"},
		{"GET", "/api/images/pics/1e1", nil, 404, "no image"},
		{"GET", "/api/images/nope/0", nil, 404, "no set"},
		{"GET", "/api/images/pics/1?max=100000", nil, 400, "max"},
		{"POST", "/api/embed", huge, 413, "upload limit"},
		{"POST", "/api/search?set=pics", huge, 413, "upload limit"},
		{"POST", "/api/embed", bomb, 400, "over the limit"},
		{"POST", "/api/search?set=pics&k=3", bomb, 400, "over the limit"},
		{"POST", "/api/embed", jbomb, 400, "over the limit"},
		{"POST", "/api/augment", jbomb, 400, "over the limit"},
		{"POST", "/api/embed", []byte("GIF89a? not really"), 400, "not a usable"},
		{"POST", "/api/embed", []byte("hello, world"), 400, "not a usable"},
		{"POST", "/api/embed", img[:len(img)/2], 400, "not a usable"},
		{"POST", "/api/embed", nil, 400, "empty"},
		{"GET", "/api/embed", nil, 405, "use POST"},
		{"GET", "/api/search?set=pics&id=1&k=0", nil, 400, "parameter k"},
		{"GET", "/api/search?set=pics&id=1&k=-3", nil, 400, "parameter k"},
		{"GET", "/api/search?set=pics&id=1&k=abc", nil, 400, "parameter k"},
		{"GET", "/api/search?set=pics&id=1&k=30", nil, 400, "only 29"},
		{"GET", "/api/search?set=pics&id=30&k=3", nil, 400, "parameter id"},
		{"GET", "/api/search?set=pics&id=x&k=3", nil, 400, "parameter id"},
		{"GET", "/api/search?set=pics&k=3", nil, 400, "needs id"},
		{"GET", "/api/search?id=1", nil, 400, "set is required"},
		{"GET", "/api/search?set=nope&id=1", nil, 404, "no set"},
		{"DELETE", "/api/search?set=pics&id=1", nil, 405, "use GET"},
		{"GET", "/api/map?set=pics&method=umap", nil, 400, "method"},
		{"GET", "/api/map?set=pics&points=1", nil, 400, "points"},
		{"GET", "/api/map?set=pics&method=tsne&points=5000", nil, 400, "points"},
		{"POST", "/api/augment?preset=nope", img, 400, "preset"},
		{"POST", "/api/augment?jitter=9", img, 400, "jitter"},
		{"POST", "/api/augment?blur=NaN", img, 400, "blur"},
		{"POST", "/api/augment?crop_min=0", img, 400, "crop_min"},
		{"POST", "/api/augment?n=1000", img, 400, "parameter n"},
		{"POST", "/api/augment", []byte("nope"), 400, "not a usable"},
		{"GET", "/api/run?since=-1", nil, 400, "since"},
		{"GET", "/api/nothing", nil, 404, "no such API"},
	}
	for _, c := range cases {
		code, b := do(t, c.method, e.ts.URL+c.path, c.body)
		var j struct{ Error string }
		if code != c.code || json.Unmarshal(b, &j) != nil || !strings.Contains(j.Error, c.msg) {
			t.Errorf("%s %s: status %d body %.200s; want %d with an error containing %q", c.method, c.path, code, b, c.code, c.msg)
		}
	}
	// The failed uploads gave their slots back: a good one still works.
	if code, b := do(t, "POST", e.ts.URL+"/api/embed", img); code != 200 {
		t.Errorf("upload after the bad ones: %d %s", code, b)
	}
	// Unknown pages are 404 too (as HTML).
	if code, _ := do(t, "GET", e.ts.URL+"/etc/passwd", nil); code != 404 {
		t.Errorf("GET /etc/passwd: status %d, want 404", code)
	}
}

// pngBomb is a valid PNG header (and an empty IDAT) claiming w x h pixels:
// decoding it would allocate w*h*4 bytes.
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		c := crc32.NewIEEE()
		c.Write([]byte(typ))
		c.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, c.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// jpegBomb is a small valid JPEG whose frame header (SOF0) is patched to
// claim w x h pixels.
func jpegBomb(t *testing.T, w, h uint16) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	i := bytes.Index(b, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

func TestTokenAndHost(t *testing.T) {
	e := testEnv(t)
	srv, err := New(Config{RunDir: e.rundir, Sets: []*Index{e.ix}, Embedder: e.emb, Token: "s3cret", MaxUpload: testUpload})
	if err != nil {
		t.Fatal(err)
	}
	ts := newServer(t, srv)
	for _, p := range []string{"/", "/search", "/static/app.css", "/api/run", "/api/images/pics/0", "/api/search?set=pics&id=1"} {
		if code, _ := do(t, "GET", ts+p, nil); code != 401 {
			t.Errorf("GET %s without a token: status %d, want 401", p, code)
		}
		if code, _ := do(t, "GET", ts+p, nil, "Authorization", "Bearer wrong"); code != 401 {
			t.Errorf("GET %s with a wrong token: status %d, want 401", p, code)
		}
		if code, _ := do(t, "GET", ts+p, nil, "Authorization", "Bearer s3cret"); code != 200 {
			t.Errorf("GET %s with the token: status %d, want 200", p, code)
		}
	}
	if code, _ := do(t, "POST", ts+"/api/embed", encodePNG(t, e.ds, 0)); code != 401 {
		t.Errorf("POST /api/embed without a token: %d, want 401", code)
	}
	// A browser link with ?token= sets a cookie and drops the token from the URL.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(ts + "/search?token=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/search" || len(ck) != 1 || ck[0].Value != "s3cret" || !ck[0].HttpOnly {
		t.Fatalf("?token=: status %d location %q cookies %v", resp.StatusCode, resp.Header.Get("Location"), ck)
	}
	if code, _ := do(t, "GET", ts+"/api/run", nil, "Cookie", tokenCookie+"=s3cret"); code != 200 {
		t.Errorf("with the cookie: %d", code)
	}
	if code, _ := do(t, "GET", ts+"/search?token=bad", nil); code != 401 {
		t.Errorf("?token=bad: %d", code)
	}
	// Without a token, a loopback server refuses other host names (DNS rebinding).
	if code, b := do(t, "GET", e.ts.URL+"/api/run", nil, "Host", "evil.example:80"); code != 403 {
		t.Errorf("Host evil.example: status %d %s, want 403", code, b)
	}
	if code, _ := do(t, "GET", e.ts.URL+"/api/run", nil, "Host", "localhost:1"); code != 200 {
		t.Errorf("Host localhost: status %d, want 200", code)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		addr, token string
		loop, ok    bool
	}{
		{"127.0.0.1:8080", "", true, true},
		{"localhost:0", "", true, true},
		{"[::1]:80", "", true, true},
		{"0.0.0.0:8080", "", false, false},
		{":8080", "", false, false},
		{"192.168.1.2:80", "t", false, true},
		{"nonsense", "", false, false},
	} {
		loop, err := CheckAddr(c.addr, c.token)
		if (err == nil) != c.ok || (err == nil && loop != c.loop) {
			t.Errorf("CheckAddr(%q, %q) = %v, %v", c.addr, c.token, loop, err)
		}
	}
}

func TestParseSetArg(t *testing.T) {
	for _, c := range []struct{ arg, name, spec string }{
		{"folder:/data/photos", "photos", "folder:/data/photos"},
		{"folder:/data/photos/", "photos", "folder:/data/photos/"},
		{"cifar10:/d/cifar10@test", "cifar10-test", "cifar10:/d/cifar10@test"},
		{"fashion-mnist", "fashion-mnist", "fashion-mnist"},
		{"mine=folder:/x/y", "mine", "folder:/x/y"},
		{"folder:/a b/c d", "c_d", "folder:/a b/c d"},
	} {
		n, s, err := ParseSetArg(c.arg)
		if err != nil || n != c.name || s != c.spec {
			t.Errorf("ParseSetArg(%q) = %q, %q, %v; want %q, %q", c.arg, n, s, err, c.name, c.spec)
		}
	}
	if _, _, err := ParseSetArg("../x=folder:/a"); err == nil {
		t.Error("a set name with '/' was accepted")
	}
}

func TestPagesAndStatic(t *testing.T) {
	e := testEnv(t)
	for _, p := range []string{"/", "/search", "/map", "/augment"} {
		code, b := do(t, "GET", e.ts.URL+p, nil)
		if code != 200 || !bytes.Contains(b, []byte(`<nav>`)) || !bytes.Contains(b, []byte(e.rundir)) {
			t.Errorf("GET %s: %d %.300s", p, code, b)
		}
	}
	for _, p := range []string{"/static/vendor/uplot/uPlot.iife.min.js", "/static/vendor/uplot/uPlot.min.css", "/static/app.css", "/static/run.js"} {
		if code, b := do(t, "GET", e.ts.URL+p, nil); code != 200 || len(b) < 100 {
			t.Errorf("GET %s: %d, %d bytes", p, code, len(b))
		}
	}
}

func TestMapAndAugment(t *testing.T) {
	e := testEnv(t)
	var m mapResult
	getJSON(t, "GET", e.ts.URL+"/api/map?set=pics&method=pca&points=20", nil, &m)
	if len(m.Points) != 20 || len(m.Classes) != 3 || len(m.Colors) != 3 {
		t.Fatalf("map: %d points, classes %v, colours %v", len(m.Points), m.Classes, m.Colors)
	}
	for _, p := range m.Points {
		if id := int(p[0]); p[3] != float64(e.ds.Label(id)) || math.IsNaN(p[1]) || math.IsNaN(p[2]) {
			t.Fatalf("map point %v: label of image %d is %d", p, id, e.ds.Label(id))
		}
	}
	// Each (set, method, points) is a new projection; only maxMaps are kept.
	for p := 2; p < 2+maxMaps+4; p++ {
		var r mapResult
		getJSON(t, "GET", fmt.Sprintf("%s/api/map?set=pics&points=%d", e.ts.URL, p), nil, &r)
		if len(r.Points) != p {
			t.Fatalf("points=%d: %d points", p, len(r.Points))
		}
	}
	e.srv.mapMu.Lock()
	kept := len(e.srv.maps)
	e.srv.mapMu.Unlock()
	if kept != maxMaps {
		t.Fatalf("%d projections kept, want at most %d", kept, maxMaps)
	}
	var ts mapResult
	getJSON(t, "GET", e.ts.URL+"/api/map?set=pics&method=tsne&points=30", nil, &ts)
	if len(ts.Points) != 30 || ts.Method != "tsne" {
		t.Fatalf("t-SNE map: %d points, method %s", len(ts.Points), ts.Method)
	}
	img := encodePNG(t, e.ds, 3)
	var a, b struct {
		Size     int
		Original string
		Views    []string
	}
	getJSON(t, "POST", e.ts.URL+"/api/augment?preset=stl10&jitter=1.5&blur=1&crop_min=0.2&n=5&seed=9", img, &a)
	getJSON(t, "POST", e.ts.URL+"/api/augment?preset=stl10&jitter=1.5&blur=1&crop_min=0.2&n=5&seed=9", img, &b)
	if a.Size != 96 || len(a.Views) != 5 || !slices.Equal(a.Views, b.Views) || !strings.HasPrefix(a.Original, "data:image/png;base64,") {
		t.Fatalf("augment: size %d, %d views, same seed same views %v", a.Size, len(a.Views), slices.Equal(a.Views, b.Views))
	}
	if slices.Equal(a.Views[:1], a.Views[1:2]) {
		t.Fatal("two random views are identical")
	}
}

// TestConcurrentRequests mixes searches by id and by upload, embeddings and
// image reads from many goroutines; every answer must equal the serial one.
func TestConcurrentRequests(t *testing.T) {
	e := testEnv(t)
	var want [5]searchResult
	for q := range want {
		getJSON(t, "GET", fmt.Sprintf("%s/api/search?set=pics&id=%d&k=6", e.ts.URL, q), nil, &want[q])
	}
	up := encodePNG(t, e.ds, 2)
	var wantUp searchResult
	getJSON(t, "POST", e.ts.URL+"/api/search?set=pics&k=6", up, &wantUp)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got searchResult
			switch g % 3 {
			case 0, 1:
				q := g % len(want)
				code, b := do(t, "GET", fmt.Sprintf("%s/api/search?set=pics&id=%d&k=6", e.ts.URL, q), nil)
				if code != 200 || json.Unmarshal(b, &got) != nil || !sameIDs(got, want[q]) {
					errs <- fmt.Errorf("search %d: %d %s", q, code, b)
				}
			case 2:
				code, b := do(t, "POST", e.ts.URL+"/api/search?set=pics&k=6", up)
				if code != 200 || json.Unmarshal(b, &got) != nil || !sameIDs(got, wantUp) {
					errs <- fmt.Errorf("upload search: %d %s", code, b)
				}
				if code, _ := do(t, "GET", fmt.Sprintf("%s/api/images/pics/%d", e.ts.URL, g%30), nil); code != 200 {
					errs <- fmt.Errorf("image: %d", code)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func sameIDs(a, b searchResult) bool {
	if len(a.Neighbors) != len(b.Neighbors) {
		return false
	}
	for i := range a.Neighbors {
		if a.Neighbors[i].ID != b.Neighbors[i].ID {
			return false
		}
	}
	return true
}
