package serve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/internal/par"
)

// maxBatch bounds how many waiting queries one matrix product serves: the
// score matrix is maxBatch x n floats (25 MB for 100k images).
const maxBatch = 64

// Index is one indexed image set: the dataset (read again only to serve
// images) and its embeddings, L2-normalised and held once, [n, dim]
// row-major, so that cosine similarity is a matrix product.
//
// Searches are answered by one goroutine that takes every query waiting at
// that moment (up to maxBatch) and scores them with a single matrix product
// (eval.Products: the engine backend's GEMM when it is tuned, gonum's
// otherwise): the embeddings are read from memory once per batch, not once
// per query, so concurrent searches cost little more than one.
type Index struct {
	Name string // the set's name in URLs
	Spec string // its data spec
	DS   data.Dataset
	N    int
	Dim  int

	emb    []float32      // [N, Dim], rows of unit length (or zero)
	labels []int          // -1 for unlabelled images
	b      engine.Backend // nil: gonum's GEMM (eval.ProductBackend)

	mu      sync.Mutex
	pending []*query
	wake    chan struct{}
	stop    chan struct{}
	scores  []float32 // the worker's reused score buffer
}

// Neighbor is one search result.
type Neighbor struct {
	ID    int     `json:"id"`
	Score float64 `json:"score"` // cosine similarity
	Label *int    `json:"label"` // null when the set is unlabelled
	Class string  `json:"class,omitempty"`
	Name  string  `json:"name"`
}

type query struct {
	vec     []float32 // unit length
	k       int
	exclude int // a row index left out of the results, or -1
	out     []int
	score   []float32
	err     error
	done    chan struct{}
}

// NewIndex takes ownership of feats (n rows of dim, in dataset order),
// normalises them in place and starts the search goroutine (stopped by
// Close). b does the matrix products when it is tuned (eval.ProductBackend).
func NewIndex(name, spec string, ds data.Dataset, feats []float32, dim int, b engine.Backend) (*Index, error) {
	n := ds.Len()
	if dim < 1 || n < 1 || len(feats) != n*dim {
		return nil, fmt.Errorf("index %s: %d values for %d images of %d-d embeddings", name, len(feats), n, dim)
	}
	for i := 0; i < n; i++ {
		normalize(feats[i*dim : (i+1)*dim])
	}
	ix := &Index{Name: name, Spec: spec, DS: ds, N: n, Dim: dim,
		emb: feats, labels: make([]int, n), b: eval.ProductBackend(b),
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
	for i := range ix.labels {
		ix.labels[i] = -1
		if ds.NumClasses() > 0 {
			ix.labels[i] = ds.Label(i)
		}
	}
	go ix.loop()
	return ix, nil
}

// Close stops the search goroutine; later searches fail.
func (ix *Index) Close() { close(ix.stop) }

// Vector returns a copy of the normalised embedding of image i.
func (ix *Index) Vector(i int) []float32 {
	return append([]float32(nil), ix.emb[i*ix.Dim:(i+1)*ix.Dim]...)
}

// Embeddings returns the normalised embeddings, [N, Dim] row-major (shared;
// do not modify).
func (ix *Index) Embeddings() []float32 { return ix.emb }

// Label returns the label of image i, -1 when unlabelled.
func (ix *Index) Label(i int) int { return ix.labels[i] }

// Labeled reports whether the set has class labels.
func (ix *Index) Labeled() bool { return ix.DS.NumClasses() > 0 }

// normalize scales v to unit length; a zero vector stays zero (its cosine
// with anything is then 0).
func normalize(v []float32) {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}

// Search returns the k rows most cosine-similar to vec (any length; it is
// normalised here), best first, ties to the lower index, leaving out row
// exclude (-1 for none).
func (ix *Index) Search(ctx context.Context, vec []float32, k, exclude int) ([]Neighbor, error) {
	if len(vec) != ix.Dim {
		return nil, fmt.Errorf("query has %d dimensions, set %s has %d", len(vec), ix.Name, ix.Dim)
	}
	avail := ix.N
	if exclude >= 0 {
		avail--
	}
	if k < 1 || k > avail {
		return nil, fmt.Errorf("k = %d: want 1 <= k <= %d", k, avail)
	}
	q := &query{vec: append([]float32(nil), vec...), k: k, exclude: exclude, done: make(chan struct{})}
	normalize(q.vec)
	ix.mu.Lock()
	ix.pending = append(ix.pending, q)
	ix.mu.Unlock()
	select {
	case ix.wake <- struct{}{}:
	default: // the worker is already due to look
	}
	select {
	case <-q.done:
	case <-ctx.Done():
		return nil, ctx.Err() // the worker still finishes q; nobody reads it
	case <-ix.stop:
		return nil, errors.New("index closed")
	}
	if q.err != nil {
		return nil, q.err
	}
	res := make([]Neighbor, len(q.out))
	names := ix.DS.ClassNames()
	for r, id := range q.out {
		nb := Neighbor{ID: id, Score: float64(q.score[r]), Name: ix.DS.Name(id)}
		if l := ix.labels[id]; ix.Labeled() && l >= 0 {
			nb.Label = &l
			if l < len(names) {
				nb.Class = names[l]
			}
		}
		res[r] = nb
	}
	return res, nil
}

func (ix *Index) loop() {
	for {
		select {
		case <-ix.stop:
			return
		case <-ix.wake:
		}
		for {
			ix.mu.Lock()
			m := min(len(ix.pending), maxBatch)
			batch := append([]*query(nil), ix.pending[:m]...)
			ix.pending = ix.pending[m:]
			ix.mu.Unlock()
			if m == 0 {
				break
			}
			ix.score(batch)
		}
	}
}

// score answers a batch of queries: S = E Qᵀ ([n, m]), then the top k of
// each column of S. (E Qᵀ rather than Q Eᵀ: oneDNN's sgemm is about twice
// as fast with the tall matrix first when m is small.)
func (ix *Index) score(batch []*query) {
	defer func() {
		if p := recover(); p != nil { // a backend failure must not kill the server
			for _, q := range batch {
				if q.out == nil {
					q.err = fmt.Errorf("search failed: %v", p)
					close(q.done)
				}
			}
		}
	}()
	m, n, d := len(batch), ix.N, ix.Dim
	qd := make([]float32, m*d)
	for i, q := range batch {
		copy(qd[i*d:], q.vec)
	}
	if cap(ix.scores) < m*n {
		ix.scores = make([]float32, m*n)
	}
	sd := ix.scores[:m*n]
	eval.Products(ix.b, sd, ix.emb, qd, n, m, d)
	// Top k of every column in one sweep over the rows: each goroutine
	// keeps the heaps of a range of queries, so the score matrix is read P
	// times in all, not once per query.
	heaps := make([]*topHeap, m)
	for j, q := range batch {
		heaps[j] = newTopHeap(q.k, q.exclude)
	}
	sweep(sd, n, m, heaps)
	for j, q := range batch {
		q.out, q.score = heaps[j].sorted()
		close(q.done)
	}
}

// sweep offers s[i*m+j] for every row i to heaps[j], the columns split
// into contiguous ranges among GOMAXPROCS goroutines.
func sweep(s []float32, n, m int, heaps []*topHeap) {
	par.For(m, min(m, runtime.GOMAXPROCS(0)), func(_, lo, hi int) {
		for i := range n {
			row := s[i*m : (i+1)*m]
			for j := lo; j < hi; j++ {
				heaps[j].offer(i, row[j])
			}
		}
	})
}

// topHeap keeps the k best (score, index) pairs offered, ranked by score
// and then by the lower index, as a min-heap whose root is the worst kept.
// Indices must be offered in increasing order (then an equal score never
// displaces a kept one). NaN scores and index exclude never rank.
type topHeap struct {
	k, exclude int
	id         []int
	sc         []float32
}

func newTopHeap(k, exclude int) *topHeap {
	return &topHeap{k: k, exclude: exclude, id: make([]int, 0, k), sc: make([]float32, 0, k)}
}

// worse reports whether entry a ranks below entry b.
func (h *topHeap) worse(a, b int) bool {
	if h.sc[a] != h.sc[b] {
		return h.sc[a] < h.sc[b]
	}
	return h.id[a] > h.id[b]
}

func (h *topHeap) swap(a, b int) {
	h.id[a], h.id[b] = h.id[b], h.id[a]
	h.sc[a], h.sc[b] = h.sc[b], h.sc[a]
}

func (h *topHeap) offer(i int, v float32) {
	if len(h.id) == h.k {
		if !(v > h.sc[0]) || i == h.exclude { // the fast path: not better than the worst kept (or NaN)
			return
		}
		h.id[0], h.sc[0] = i, v
		for j := 0; ; { // sift down
			l, w := 2*j+1, j
			if l < h.k && h.worse(l, w) {
				w = l
			}
			if r := l + 1; r < h.k && h.worse(r, w) {
				w = r
			}
			if w == j {
				return
			}
			h.swap(j, w)
			j = w
		}
	}
	if i == h.exclude || v != v {
		return
	}
	h.id, h.sc = append(h.id, i), append(h.sc, v)
	for j := len(h.id) - 1; j > 0; { // sift up
		p := (j - 1) / 2
		if !h.worse(j, p) {
			break
		}
		h.swap(j, p)
		j = p
	}
}

// sorted returns the kept indices best first and their scores.
func (h *topHeap) sorted() ([]int, []float32) {
	idx := make([]int, len(h.id))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return h.worse(idx[b], idx[a]) })
	ids, sc := make([]int, len(idx)), make([]float32, len(idx))
	for r, i := range idx {
		ids[r], sc[r] = h.id[i], h.sc[i]
	}
	return ids, sc
}
