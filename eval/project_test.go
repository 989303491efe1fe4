package eval

import (
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestPCAFindsTheDominantDirection plants a known direction with a large
// variance and checks the first score against the planted latent values.
func TestPCAFindsTheDominantDirection(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	n, dim := 300, 6
	dir := []float64{1, 2, 0, -1, 0.5, 0}
	norm := 0.0
	for _, v := range dir {
		norm += v * v
	}
	norm = math.Sqrt(norm)
	latent := make([]float64, n)
	x := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		latent[i] = 5 * rng.NormFloat64()
		for j := 0; j < dim; j++ {
			x[i*dim+j] = float32(latent[i]*dir[j]/norm + 0.1*rng.NormFloat64() + 3)
		}
	}
	s, err := PCA(x, n, dim, 2)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]float64, n)
	for i := range first {
		first[i] = s[2*i]
	}
	if c := math.Abs(corr(first, latent)); c < 0.999 {
		t.Errorf("|corr(PC1, latent)| = %v, want > 0.999", c)
	}
	// Scores are centred and PC1 carries more variance than PC2.
	var m1, v1, v2 float64
	for i := 0; i < n; i++ {
		m1 += s[2*i]
		v1 += s[2*i] * s[2*i]
		v2 += s[2*i+1] * s[2*i+1]
	}
	if math.Abs(m1/float64(n)) > 1e-9 || v2 > v1/100 {
		t.Errorf("mean PC1 %v, var PC1 %v, var PC2 %v", m1/float64(n), v1, v2)
	}
}

func corr(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= float64(len(a))
	mb /= float64(len(b))
	var sab, saa, sbb float64
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
		sbb += (b[i] - mb) * (b[i] - mb)
	}
	return sab / math.Sqrt(saa*sbb)
}

func TestTSNEPerplexityCalibration(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	n := 50
	dist := make([]float64, n)
	for j := range dist {
		dist[j] = 10 * rng.Float64()
	}
	row := make([]float64, n)
	for _, perp := range []float64{5, 15} {
		tsneConditional(row, dist, 3, perp)
		h, s := 0.0, 0.0
		for j, v := range row {
			s += v
			if v > 0 {
				h -= v * math.Log(v)
			}
			if j == 3 && v != 0 {
				t.Errorf("p(i|i) = %v, want 0", v)
			}
		}
		if math.Abs(s-1) > 1e-12 || math.Abs(math.Exp(h)-perp) > 1e-3*perp {
			t.Errorf("perplexity %v: sum %v, exp(entropy) %v", perp, s, math.Exp(h))
		}
	}
}

// TestTSNESeparatesClusters: three well-separated clusters in 20-D must stay
// separated in the map (2-D nearest neighbour has the same label).
func TestTSNESeparatesClusters(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	n, dim := 150, 20
	x := make([]float32, n*dim)
	labels := make([]int, n)
	for i := 0; i < n; i++ {
		labels[i] = i % 3
		for j := 0; j < dim; j++ {
			c := 0.0
			if j == labels[i] {
				c = 10
			}
			x[i*dim+j] = float32(c + rng.NormFloat64())
		}
	}
	y, err := TSNE(x, n, dim, TSNEConfig{Seed: 1, Iterations: 500})
	if err != nil {
		t.Fatal(err)
	}
	agree := 0
	for i := 0; i < n; i++ {
		best, bd := -1, math.Inf(1)
		for j := 0; j < n; j++ {
			if j == i {
				continue
			}
			dx, dy := y[2*i]-y[2*j], y[2*i+1]-y[2*j+1]
			if d := dx*dx + dy*dy; d < bd {
				best, bd = j, d
			}
		}
		if labels[best] == labels[i] {
			agree++
		}
		if math.IsNaN(y[2*i]) {
			t.Fatal("NaN in the map")
		}
	}
	if frac := float64(agree) / float64(n); frac < 0.98 {
		t.Errorf("2-D 1-NN label agreement %.3f, want >= 0.98", frac)
	}
}

func TestScatterPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.png")
	pts := []float64{0, 0, 1, 1, 2, 0.5, -1, 3}
	if err := ScatterPNG(path, pts, []int{0, 1, 1, -1}, []string{"cat", "dog"}, "test"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	// The class colours must appear in the picture.
	found := map[[3]uint32]bool{}
	b := img.Bounds()
	for yy := b.Min.Y; yy < b.Max.Y; yy++ {
		for xx := b.Min.X; xx < b.Max.X; xx++ {
			r, g, bb, _ := img.At(xx, yy).RGBA()
			found[[3]uint32{r >> 8, g >> 8, bb >> 8}] = true
		}
	}
	for _, l := range []int{0, 1} {
		c := ClassColor(l)
		if !found[[3]uint32{uint32(c.R), uint32(c.G), uint32(c.B)}] {
			t.Errorf("colour of class %d not drawn", l)
		}
	}
	if err := ScatterPNG(path, pts, []int{0}, nil, ""); err == nil {
		t.Error("label count mismatch: no error")
	}
}

func TestSubsample(t *testing.T) {
	if s := Subsample(5, 10, 1); len(s) != 5 {
		t.Errorf("n<=max: %v", s)
	}
	s := Subsample(1000, 100, 1)
	if len(s) != 100 {
		t.Fatalf("len %d", len(s))
	}
	for i := 1; i < len(s); i++ {
		if s[i] <= s[i-1] {
			t.Fatal("not strictly increasing")
		}
	}
}

// TestTSNEFewPointsManyDims: PCA can keep only min(n, dim) components.
func TestTSNEFewPointsManyDims(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	n, dim := 12, 80
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y, err := TSNE(x, n, dim, TSNEConfig{Iterations: 50})
	if err != nil || len(y) != 2*n {
		t.Fatalf("len %d, err %v", len(y), err)
	}
}
