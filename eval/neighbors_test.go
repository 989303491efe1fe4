package eval

import (
	"image/color"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/simclr-go/simclr/augment"
)

// TestNearestMatchesEuclideanOracle: on unit vectors, the most cosine-similar
// rows are the closest in Euclidean distance.
func TestNearestMatchesEuclideanOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	n, dim, k := 60, 7, 5
	feats := make([]float32, n*dim)
	for i := range feats {
		feats[i] = float32(rng.NormFloat64())
	}
	// Scale rows arbitrarily: cosine similarity must ignore the norm.
	for i := 0; i < n; i++ {
		s := float32(0.1 + 10*rng.Float64())
		for j := 0; j < dim; j++ {
			feats[i*dim+j] *= s
		}
	}
	queries := []int{0, 17, 59}
	got, err := Nearest(feats, n, dim, queries, k)
	if err != nil {
		t.Fatal(err)
	}
	unit := func(i int) []float64 {
		v := make([]float64, dim)
		s := 0.0
		for j := range v {
			v[j] = float64(feats[i*dim+j])
			s += v[j] * v[j]
		}
		for j := range v {
			v[j] /= math.Sqrt(s)
		}
		return v
	}
	for qi, q := range queries {
		uq := unit(q)
		var others []int
		dist := map[int]float64{}
		for i := 0; i < n; i++ {
			if i == q {
				continue
			}
			ui, d := unit(i), 0.0
			for j := range ui {
				d += (ui[j] - uq[j]) * (ui[j] - uq[j])
			}
			dist[i] = d
			others = append(others, i)
		}
		sort.Slice(others, func(a, b int) bool { return dist[others[a]] < dist[others[b]] })
		if !slices.Equal(got[qi], others[:k]) {
			t.Errorf("query %d: %v, oracle %v", q, got[qi], others[:k])
		}
	}
	if _, err := Nearest(feats, n, dim, []int{n}, k); err == nil {
		t.Error("query out of range: no error")
	}
	if _, err := Nearest(feats, n, dim, queries, n); err == nil {
		t.Error("k >= n: no error")
	}
}

func TestNeighborGridPixels(t *testing.T) {
	src := augment.NewImage(2, 2)
	// Top-left red, bottom-right white.
	src.Pix[0] = 1
	for c := 0; c < 3; c++ {
		src.Pix[(c*2+1)*2+1] = 1
	}
	rows := [][]GridCell{{{Img: src, Border: FrameQuery}, {Img: src, Border: FrameMiss}}}
	img := NeighborGrid(rows, 8)
	const frame, gap = 2, 4
	step := 8 + 2*frame + gap
	if b := img.Bounds(); b.Dx() != gap+2*step || b.Dy() != gap+step {
		t.Fatalf("size %v", b)
	}
	if c := img.RGBAAt(gap, gap); c != FrameQuery {
		t.Errorf("query frame %v", c)
	}
	if c := img.RGBAAt(gap+step, gap); c != FrameMiss {
		t.Errorf("neighbour frame %v", c)
	}
	if c := img.RGBAAt(gap+frame, gap+frame); c != (color.RGBA{255, 0, 0, 255}) {
		t.Errorf("top-left pixel %v, want red", c)
	}
	if c := img.RGBAAt(gap+frame+7, gap+frame+7); c != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("bottom-right pixel %v, want white", c)
	}
	if c := img.RGBAAt(gap+frame+7, gap+frame); c != (color.RGBA{0, 0, 0, 255}) {
		t.Errorf("top-right pixel %v, want black", c)
	}
	if err := SavePNG(filepath.Join(t.TempDir(), "g.png"), img); err != nil {
		t.Fatal(err)
	}
	if err := SavePNG(filepath.Join(t.TempDir(), "nodir", "g.png"), img); err == nil {
		t.Error("missing directory: no error")
	}
}
