package eval

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"

	"github.com/simclr-go/simclr/internal/par"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Subsample returns up to max indices of [0,n) chosen reproducibly from
// seed, in ascending order (all of them when n <= max).
func Subsample(n, max int, seed uint64) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if n <= max {
		return idx
	}
	rng := rand.New(rand.NewPCG(seed, 0x5ab5a3))
	rng.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	idx = idx[:max]
	sort.Ints(idx)
	return idx
}

// PCA projects n rows of x onto their first k principal components
// (gonum stat.PC) and returns the [n, k] scores, row-major.
func PCA(x []float32, n, dim, k int) ([]float64, error) {
	if n < 2 || k < 1 || len(x) != n*dim {
		return nil, fmt.Errorf("pca: need >= 2 rows and %d values (n %d, dim %d, k %d)", n*dim, n, dim, k)
	}
	k = min(k, dim, n)
	a := mat.NewDense(n, dim, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < dim; j++ {
			a.Set(i, j, float64(x[i*dim+j]))
		}
	}
	var pc stat.PC
	if !pc.PrincipalComponents(a, nil) {
		return nil, errors.New("pca: SVD did not converge")
	}
	var vecs mat.Dense
	pc.VectorsTo(&vecs)
	// Centre, then project onto the first k component vectors.
	means := make([]float64, dim)
	for j := range means {
		means[j] = stat.Mean(mat.Col(nil, j, a), nil)
	}
	for i := 0; i < n; i++ {
		for j := 0; j < dim; j++ {
			a.Set(i, j, a.At(i, j)-means[j])
		}
	}
	var proj mat.Dense
	proj.Mul(a, vecs.Slice(0, dim, 0, k))
	out := make([]float64, n*k)
	for i := 0; i < n; i++ {
		for j := 0; j < k; j++ {
			out[i*k+j] = proj.At(i, j)
		}
	}
	return out, nil
}

// TSNEConfig controls TSNE; zero values pick the usual defaults.
type TSNEConfig struct {
	Perplexity float64 // 30 (lowered to (n-1)/3 for small n)
	Iterations int     // 1000
	PCADims    int     // reduce to this many dims by PCA first: 50
	Seed       uint64
}

// TSNE embeds n rows of x in 2-D with exact t-SNE (van der Maaten & Hinton
// 2008): Gaussian affinities calibrated to the perplexity, Student-t
// similarities in the map, early exaggeration 12 for 250 iterations,
// momentum 0.5 then 0.8 and per-coordinate adaptive gains. It costs O(n²)
// per iteration, so callers subsample to a few thousand points.
func TSNE(x []float32, n, dim int, cfg TSNEConfig) ([]float64, error) {
	if n < 4 || len(x) != n*dim {
		return nil, fmt.Errorf("t-SNE: need >= 4 rows and %d values (n %d, dim %d)", n*dim, n, dim)
	}
	if cfg.Perplexity == 0 {
		cfg.Perplexity = 30
	}
	cfg.Perplexity = math.Min(cfg.Perplexity, float64(n-1)/3)
	if cfg.Iterations == 0 {
		cfg.Iterations = 1000
	}
	if cfg.PCADims == 0 {
		cfg.PCADims = 50
	}
	var xd []float64
	d := dim
	if dim > cfg.PCADims {
		var err error
		if xd, err = PCA(x, n, dim, cfg.PCADims); err != nil {
			return nil, fmt.Errorf("t-SNE: %w", err)
		}
		d = len(xd) / n // PCA keeps at most min(n, dim) components
	} else {
		xd = make([]float64, n*dim)
		for i, v := range x {
			xd[i] = float64(v)
		}
	}
	p := tsneAffinities(xd, n, d, cfg.Perplexity)
	return tsneOptimize(p, n, cfg), nil
}

// tsneConditional fills row (length n) with p_{j|i} for squared distances
// dist so that the entropy matches log(perplexity); it returns beta = 1/(2σ²).
func tsneConditional(row, dist []float64, i int, perplexity float64) float64 {
	target := math.Log(perplexity)
	beta, lo, hi := 1.0, 0.0, math.Inf(1)
	// Distances are shifted by the nearest neighbour's for stability; the
	// normalised probabilities do not change.
	minD := math.Inf(1)
	for j, v := range dist {
		if j != i && v < minD {
			minD = v
		}
	}
	for it := 0; it < 200; it++ {
		sum, hsum := 0.0, 0.0
		for j, v := range dist {
			if j == i {
				row[j] = 0
				continue
			}
			e := math.Exp(-(v - minD) * beta)
			row[j] = e
			sum += e
			hsum += (v - minD) * e
		}
		h := math.Log(sum) + beta*hsum/sum
		for j := range row {
			row[j] /= sum
		}
		diff := h - target
		if math.Abs(diff) < 1e-5 {
			break
		}
		if diff > 0 { // too flat: sharpen
			lo = beta
			if math.IsInf(hi, 1) {
				beta *= 2
			} else {
				beta = (beta + hi) / 2
			}
		} else {
			hi = beta
			beta = (beta + lo) / 2
		}
	}
	return beta
}

// tsneAffinities returns the symmetric joint probabilities P [n*n].
func tsneAffinities(x []float64, n, d int, perplexity float64) []float64 {
	p := make([]float64, n*n)
	forRows(n, func(i int) {
		dist := make([]float64, n)
		xi := x[i*d : (i+1)*d]
		for j := 0; j < n; j++ {
			s := 0.0
			xj := x[j*d : (j+1)*d]
			for k := range xi {
				e := xi[k] - xj[k]
				s += e * e
			}
			dist[j] = s
		}
		tsneConditional(p[i*n:(i+1)*n], dist, i, perplexity)
	})
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			v := math.Max((p[i*n+j]+p[j*n+i])/(2*float64(n)), 1e-12)
			p[i*n+j], p[j*n+i] = v, v
		}
	}
	return p
}

func tsneOptimize(p []float64, n int, cfg TSNEConfig) []float64 {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x75e))
	y := make([]float64, 2*n)
	for i := range y {
		y[i] = 1e-4 * rng.NormFloat64()
	}
	vel := make([]float64, 2*n)
	gains := make([]float64, 2*n)
	for i := range gains {
		gains[i] = 1
	}
	grad := make([]float64, 2*n)
	num := make([]float64, n*n)
	const exagIters = 250
	lr := math.Max(float64(n)/12/4, 50) // the "auto" learning rate of openTSNE/sklearn
	for it := 0; it < cfg.Iterations; it++ {
		exag, mom := 12.0, 0.5
		if it >= exagIters {
			exag, mom = 1, 0.8
		}
		// Student-t kernel and its normaliser.
		sums := make([]float64, n)
		forRows(n, func(i int) {
			s := 0.0
			for j := 0; j < n; j++ {
				if j == i {
					num[i*n+j] = 0
					continue
				}
				dx, dy := y[2*i]-y[2*j], y[2*i+1]-y[2*j+1]
				v := 1 / (1 + dx*dx + dy*dy)
				num[i*n+j] = v
				s += v
			}
			sums[i] = s
		})
		z := 0.0
		for _, s := range sums {
			z += s
		}
		forRows(n, func(i int) {
			gx, gy := 0.0, 0.0
			for j := 0; j < n; j++ {
				w := num[i*n+j]
				m := (exag*p[i*n+j] - w/z) * w
				gx += m * (y[2*i] - y[2*j])
				gy += m * (y[2*i+1] - y[2*j+1])
			}
			grad[2*i], grad[2*i+1] = 4*gx, 4*gy
		})
		for k := range y {
			if (grad[k] > 0) != (vel[k] > 0) {
				gains[k] += 0.2
			} else {
				gains[k] = math.Max(gains[k]*0.8, 0.01)
			}
			vel[k] = mom*vel[k] - lr*gains[k]*grad[k]
			y[k] += vel[k]
		}
		// Keep the map centred.
		var mx, my float64
		for i := 0; i < n; i++ {
			mx += y[2*i]
			my += y[2*i+1]
		}
		mx /= float64(n)
		my /= float64(n)
		for i := 0; i < n; i++ {
			y[2*i] -= mx
			y[2*i+1] -= my
		}
	}
	return y
}

// forRows runs f(i) for i in [0,n) on GOMAXPROCS-many goroutines.
func forRows(n int, f func(i int)) { par.Each(n, maxProcs(), f) }

// palette is matplotlib's tab10, then evenly spaced hues for more classes.
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
	{188, 189, 34, 255}, {23, 190, 207, 255},
}

// ClassColor returns a distinct colour for label l (grey-black for -1).
func ClassColor(l int) color.RGBA {
	if l < 0 {
		return color.RGBA{40, 40, 40, 255}
	}
	if l < len(palette) {
		return palette[l]
	}
	h := math.Mod(float64(l)*0.618033988749895, 1)
	r, g, b := hsvToRGB(h, 0.65, 0.85)
	return color.RGBA{r, g, b, 255}
}

func hsvToRGB(h, s, v float64) (uint8, uint8, uint8) {
	i := math.Floor(h * 6)
	f := h*6 - i
	p, q, t := v*(1-s), v*(1-f*s), v*(1-(1-f)*s)
	var r, g, b float64
	switch int(i) % 6 {
	case 0:
		r, g, b = v, t, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, t
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = t, p, v
	default:
		r, g, b = v, p, q
	}
	return uint8(255 * r), uint8(255 * g), uint8(255 * b)
}

// ScatterPNG draws 2-D points (pts [n,2]) coloured by label into a PNG (or
// any format gonum/plot infers from path's extension), with a legend of the
// class names (or label numbers).
func ScatterPNG(path string, pts []float64, labels []int, classNames []string, title string) error {
	n := len(pts) / 2
	if len(labels) != n {
		return fmt.Errorf("scatter %s: %d points, %d labels", path, n, len(labels))
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = "dim 1", "dim 2"
	groups := map[int]plotter.XYs{}
	for i := 0; i < n; i++ {
		groups[labels[i]] = append(groups[labels[i]], plotter.XY{X: pts[2*i], Y: pts[2*i+1]})
	}
	keys := make([]int, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	radius := vg.Points(2)
	if n > 2000 {
		radius = vg.Points(1.2)
	}
	for _, l := range keys {
		s, err := plotter.NewScatter(groups[l])
		if err != nil {
			return fmt.Errorf("scatter %s: %w", path, err)
		}
		s.GlyphStyle.Color = ClassColor(l)
		s.GlyphStyle.Radius = radius
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(s)
		name := fmt.Sprint(l)
		switch {
		case l < 0:
			name = "unlabeled"
		case l < len(classNames) && classNames[l] != "":
			name = classNames[l]
		}
		if len(keys) <= 30 { // beyond that a legend is unreadable
			p.Legend.Add(name, s)
		}
	}
	p.Legend.Top, p.Legend.Left = true, false
	if err := p.Save(7*vg.Inch, 6*vg.Inch, path); err != nil {
		return fmt.Errorf("scatter %s: %w", path, err)
	}
	return nil
}

func maxProcs() int { return runtime.GOMAXPROCS(0) }
