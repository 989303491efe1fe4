package serve

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/eval"
)

// Map sizes: PCA is cheap; exact t-SNE is O(n²) per iteration (~30 s for
// 1000 points on two cores).
const (
	maxPCAPoints  = 20000
	maxTSNEPoints = 1000
)

// maxMaps bounds the projections kept: each request names its own
// (set, method, points), so without a bound a client could fill memory.
const maxMaps = 16

// mapEntry is one computed projection, shared by every request for it;
// once makes concurrent first requests compute it once.
type mapEntry struct {
	once sync.Once
	res  *mapResult
	err  error
}

type mapResult struct {
	Set     string      `json:"set"`
	Method  string      `json:"method"`
	Classes []string    `json:"classes"`
	Colors  []string    `json:"colors"` // CSS colour per label (eval.ClassColor)
	Points  [][]float64 `json:"points"` // [id, x, y, label]
}

// apiMap returns a 2-D projection (method=pca or tsne) of a seeded sample
// of points images of a set, with their ids and labels.
func (s *Server) apiMap(w http.ResponseWriter, r *http.Request) {
	ix := s.set(w, r.URL.Query().Get("set"))
	if ix == nil {
		return
	}
	method := r.URL.Query().Get("method")
	limit := maxPCAPoints
	switch method {
	case "", "pca":
		method = "pca"
	case "tsne":
		limit = maxTSNEPoints
	default:
		jsonError(w, http.StatusBadRequest, "parameter method=%q: want pca or tsne", method)
		return
	}
	points, ok := intParam(w, r, "points", min(2000, limit), 2, limit)
	if !ok {
		return
	}
	key := fmt.Sprintf("%s\x00%s\x00%d", ix.Name, method, points)
	s.mapMu.Lock()
	e := s.maps[key]
	if e == nil {
		if len(s.mapKeys) >= maxMaps { // forget the oldest
			delete(s.maps, s.mapKeys[0])
			s.mapKeys = s.mapKeys[1:]
		}
		e = &mapEntry{}
		s.maps[key] = e
		s.mapKeys = append(s.mapKeys, key)
	}
	s.mapMu.Unlock()
	if !acquire(w, r, s.work) {
		return
	}
	e.once.Do(func() { e.res, e.err = project(ix, method, points) })
	<-s.work
	if e.err != nil {
		jsonError(w, http.StatusUnprocessableEntity, "map of %s: %v", ix.Name, e.err)
		return
	}
	writeJSON(w, http.StatusOK, e.res)
}

func project(ix *Index, method string, points int) (*mapResult, error) {
	ids := eval.Subsample(ix.N, points, 1)
	n, d := len(ids), ix.Dim
	if n < 2 {
		return nil, fmt.Errorf("a map needs at least 2 images, the set has %d", n)
	}
	x := make([]float32, 0, n*d)
	emb := ix.Embeddings()
	for _, i := range ids {
		x = append(x, emb[i*d:(i+1)*d]...)
	}
	var pts []float64
	var err error
	if method == "pca" {
		pts, err = eval.PCA(x, n, d, 2)
	} else {
		pts, err = eval.TSNE(x, n, d, eval.TSNEConfig{Seed: 1})
	}
	if err != nil {
		return nil, err
	}
	k := len(pts) / n // PCA of 1-d data gives one column
	res := &mapResult{Set: ix.Name, Method: method, Classes: ix.DS.ClassNames(), Points: make([][]float64, n)}
	for l := range ix.DS.NumClasses() {
		c := eval.ClassColor(l)
		res.Colors = append(res.Colors, fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B))
	}
	for r, i := range ids {
		y := 0.0
		if k > 1 {
			y = pts[r*k+1]
		}
		res.Points[r] = []float64{float64(i), pts[r*k], y, float64(ix.Label(i))}
	}
	return res, nil
}

// maxViews bounds the augmentation grid.
const maxViews = 64

// apiAugment draws n augmented views of the uploaded image with a preset,
// overridden by the sliders: jitter (strength s), blur (probability) and
// crop_min (smallest crop area). The answer has the evaluation view and
// the views as PNG data URLs, shown denormalised.
func (s *Server) apiAugment(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	preset := q.Get("preset")
	if preset == "" {
		preset = "cifar"
	}
	cfg, err := augment.Preset(preset)
	if err != nil {
		jsonError(w, http.StatusBadRequest, "parameter preset: %v", err)
		return
	}
	var ok bool
	if cfg.JitterStrength, ok = floatParam(w, r, "jitter", cfg.JitterStrength, 0, 2.5); !ok {
		return
	}
	if cfg.BlurP, ok = floatParam(w, r, "blur", cfg.BlurP, 0, 1); !ok {
		return
	}
	if cfg.CropScaleMin, ok = floatParam(w, r, "crop_min", cfg.CropScaleMin, 0.01, 1); !ok {
		return
	}
	n, ok := intParam(w, r, "n", 16, 1, maxViews)
	if !ok {
		return
	}
	seed, ok := intParam(w, r, "seed", 1, 0, 1<<30)
	if !ok {
		return
	}
	p, err := augment.New(cfg)
	if err != nil {
		jsonError(w, http.StatusBadRequest, "augmentation settings: %v", err)
		return
	}
	src, release := s.readImage(w, r)
	if src == nil {
		return
	}
	defer release()
	out := struct {
		Preset   string   `json:"preset"`
		Size     int      `json:"size"`
		Original string   `json:"original"`
		Views    []string `json:"views"`
	}{Preset: preset, Size: cfg.Size}
	var im augment.Image
	if err := p.EvalImage(&im, src); err != nil {
		jsonError(w, http.StatusBadRequest, "augmenting: %v", err)
		return
	}
	if out.Original, err = pngDataURL(&im); err != nil {
		jsonError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	for range n {
		if err := p.ApplyImage(&im, src, p.Sample(rng, src.W, src.H)); err != nil {
			jsonError(w, http.StatusBadRequest, "augmenting: %v", err)
			return
		}
		u, err := pngDataURL(&im)
		if err != nil {
			jsonError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		out.Views = append(out.Views, u)
	}
	writeJSON(w, http.StatusOK, out)
}
