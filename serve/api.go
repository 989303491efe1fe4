package serve

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"strconv"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	xdraw "golang.org/x/image/draw"
)

// maxK bounds k in searches: results are for people to look at.
const maxK = 1000

// setInfo describes an indexed set to the pages.
type setInfo struct {
	Name    string   `json:"name"`
	Spec    string   `json:"spec"`
	N       int      `json:"n"`
	Dim     int      `json:"dim"`
	Labeled bool     `json:"labeled"`
	Classes []string `json:"classes"`
}

func (s *Server) setInfos() []setInfo {
	out := make([]setInfo, 0, len(s.cfg.Sets))
	for _, ix := range s.cfg.Sets {
		out = append(out, setInfo{Name: ix.Name, Spec: ix.Spec, N: ix.N, Dim: ix.Dim, Labeled: ix.Labeled(), Classes: ix.DS.ClassNames()})
	}
	return out
}

func (s *Server) apiSets(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"layer": s.cfg.Embedder.Layer, "sets": s.setInfos()})
}

// maxUploads bounds the uploads read, decoded and used at once: a
// compressed image within the byte cap can decode to the loader's pixel
// limit (2^26 pixels, 768 MiB as float32 RGB), so memory is bounded by
// this many such images, whatever the number of clients.
const maxUploads = 2

// readImage reads and decodes a request body with the loader's decoder and
// pixel limit, holding one of the maxUploads slots until the caller calls
// release. It writes the error answer itself and returns nil then:
// 413 over the byte cap, 400 for an empty body, a non-image, a corrupt
// image or one over the pixel limit.
func (s *Server) readImage(w http.ResponseWriter, r *http.Request) (img *augment.Image, release func()) {
	if !acquire(w, r, s.uploads) {
		return nil, nil
	}
	free := func() { <-s.uploads }
	defer func() {
		if img == nil {
			free()
		}
	}()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			jsonError(w, http.StatusRequestEntityTooLarge, "request body over the upload limit of %d bytes (server flag --max-upload-mb)", mbe.Limit)
			return nil, nil
		}
		jsonError(w, http.StatusBadRequest, "reading the request body: %v", err)
		return nil, nil
	}
	if len(b) == 0 {
		jsonError(w, http.StatusBadRequest, "empty request body: send a JPEG or PNG image as the body")
		return nil, nil
	}
	if img, err = data.DecodeImage(b); err != nil {
		jsonError(w, http.StatusBadRequest, "request body is not a usable JPEG or PNG image: %v", err)
		return nil, nil
	}
	return img, free
}

func (s *Server) apiEmbed(w http.ResponseWriter, r *http.Request) {
	img, release := s.readImage(w, r)
	if img == nil {
		return
	}
	defer release()
	v, err := s.cfg.Embedder.Image(img)
	if err != nil {
		jsonError(w, http.StatusBadRequest, "embedding the image: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"layer": s.cfg.Embedder.Layer, "embedding": v})
}

// set finds the set named by the "set" parameter, writing a 400 (missing)
// or 404 (unknown) when there is none.
func (s *Server) set(w http.ResponseWriter, name string) *Index {
	if name == "" {
		jsonError(w, http.StatusBadRequest, "parameter set is required (one of %v)", s.setNames())
		return nil
	}
	ix, ok := s.sets[name]
	if !ok {
		jsonError(w, http.StatusNotFound, "no set named %q (sets: %v)", name, s.setNames())
		return nil
	}
	return ix
}

func (s *Server) setNames() []string {
	var n []string
	for _, ix := range s.cfg.Sets {
		n = append(n, ix.Name)
	}
	return n
}

// intParam parses an optional integer parameter in [lo, hi]; def when
// absent. It writes a 400 naming the parameter when it is malformed.
func intParam(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		jsonError(w, http.StatusBadRequest, "parameter %s=%q: want an integer in [%d, %d]", name, v, lo, hi)
		return 0, false
	}
	return n, true
}

func floatParam(w http.ResponseWriter, r *http.Request, name string, def, lo, hi float64) (float64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= lo && f <= hi) {
		jsonError(w, http.StatusBadRequest, "parameter %s=%q: want a number in [%g, %g]", name, v, lo, hi)
		return 0, false
	}
	return f, true
}

// searchResult is the answer of /api/search.
type searchResult struct {
	Set   string `json:"set"`
	Query *int   `json:"query,omitempty"` // the query's id when given by id
	// QueryLabel and QueryClass are the query's label and class name, for
	// a labelled query given by id.
	QueryLabel *int       `json:"query_label,omitempty"`
	QueryClass string     `json:"query_class,omitempty"`
	K          int        `json:"k"`
	Neighbors  []Neighbor `json:"neighbors"`
	// PrecisionAtK is the share of neighbours with the query's label, for
	// a labelled query from a labelled set.
	PrecisionAtK *float64 `json:"precision_at_k,omitempty"`
}

// apiSearch: GET with id=I searches with image I of the set (itself left
// out); POST searches with the uploaded image.
func (s *Server) apiSearch(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		jsonError(w, http.StatusMethodNotAllowed, "%s /api/search: use GET with id=I, or POST an image", r.Method)
		return
	}
	ix := s.set(w, r.URL.Query().Get("set"))
	if ix == nil {
		return
	}
	k, ok := intParam(w, r, "k", 10, 1, maxK)
	if !ok {
		return
	}
	res := searchResult{Set: ix.Name, K: k}
	var vec []float32
	exclude := -1
	if r.Method == http.MethodGet {
		idv := r.URL.Query().Get("id")
		if idv == "" {
			jsonError(w, http.StatusBadRequest, "GET /api/search needs id=I (an image of set %s, 0 <= I < %d); POST an image to search with it", ix.Name, ix.N)
			return
		}
		id, ok := intParam(w, r, "id", 0, 0, ix.N-1)
		if !ok {
			return
		}
		vec, exclude, res.Query = ix.Vector(id), id, &id
	} else {
		img, release := s.readImage(w, r)
		if img == nil {
			return
		}
		var err error
		vec, err = s.cfg.Embedder.Image(img)
		release()
		if err != nil {
			jsonError(w, http.StatusBadRequest, "embedding the image: %v", err)
			return
		}
	}
	avail := ix.N
	if exclude >= 0 {
		avail-- // the query itself
	}
	if k > avail {
		jsonError(w, http.StatusBadRequest, "parameter k=%d: set %s has only %d other images", k, ix.Name, avail)
		return
	}
	nb, err := ix.Search(r.Context(), vec, k, exclude)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		s.cfg.Log.Printf("serve: search %s: %v", ix.Name, err)
		jsonError(w, http.StatusServiceUnavailable, "search failed: %v", err)
		return
	}
	res.Neighbors = nb
	if exclude >= 0 && ix.Labeled() && ix.Label(exclude) >= 0 {
		l := ix.Label(exclude)
		res.QueryLabel = &l
		if names := ix.DS.ClassNames(); l < len(names) {
			res.QueryClass = names[l]
		}
		hit := 0
		for _, n := range nb {
			if n.Label != nil && *n.Label == ix.Label(exclude) {
				hit++
			}
		}
		p := float64(hit) / float64(len(nb))
		res.PrecisionAtK = &p
	}
	writeJSON(w, http.StatusOK, res)
}

// apiImage serves image I of a set as PNG, only by set name and index;
// max=N scales it down so that its longer side is at most N pixels.
func (s *Server) apiImage(w http.ResponseWriter, r *http.Request) {
	ix, ok := s.sets[r.PathValue("set")]
	if !ok {
		jsonError(w, http.StatusNotFound, "no set named %q", r.PathValue("set"))
		return
	}
	idv := r.PathValue("id")
	id, err := strconv.Atoi(idv)
	if err != nil || id < 0 || id >= ix.N || strconv.Itoa(id) != idv {
		jsonError(w, http.StatusNotFound, "set %s has no image %q (ids are 0 to %d)", ix.Name, idv, ix.N-1)
		return
	}
	side, ok := intParam(w, r, "max", 0, 8, 4096)
	if !ok {
		return
	}
	// Decoding and scaling a large photo takes memory and time: a few at once.
	if !acquire(w, r, s.work) {
		return
	}
	defer func() { <-s.work }()
	img, err := ix.DS.Image(id)
	if err != nil {
		// The file changed or vanished since indexing: the server's data,
		// not the request, is at fault.
		s.cfg.Log.Printf("serve: image %s/%d: %v", ix.Name, id, err)
		jsonError(w, http.StatusInternalServerError, "reading image %d of set %s: %v", id, ix.Name, err)
		return
	}
	var m image.Image = img.ToNRGBA()
	if side > 0 && max(img.W, img.H) > side {
		sw, sh := max(1, img.W*side/max(img.W, img.H)), max(1, img.H*side/max(img.W, img.H))
		dst := image.NewNRGBA(image.Rect(0, 0, sw, sh))
		xdraw.CatmullRom.Scale(dst, dst.Bounds(), m, m.Bounds(), xdraw.Src, nil)
		m = dst
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, m); err != nil {
		jsonError(w, http.StatusInternalServerError, "encoding PNG: %v", err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	w.Write(buf.Bytes())
}
