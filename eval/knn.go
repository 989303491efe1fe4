package eval

import (
	"fmt"
	"math"
	"runtime"
	"sort"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/internal/par"
)

// Blocks bound the similarity buffer to knnTestBlock×knnTrainBlock floats
// (16 MiB); variables so that tests can shrink them.
var knnTestBlock, knnTrainBlock = 512, 8192

// KNN is the weighted k-nearest-neighbour classifier used to monitor
// self-supervised training (Wu et al. 2018, as in lightly and solo-learn):
// features are L2-normalised, each test sample takes its k most
// cosine-similar training samples, neighbour j votes for its class with
// weight exp(sim_j/τ), and the classes are ranked by total vote. It returns
// the top-1 and top-5 accuracy in [0, 1].
//
// trainFeats is [len(trainLabels), dim] row-major, testFeats likewise. k is
// capped at the number of training samples. Labels must lie in
// [0, numClasses). Similarities are computed in float32 by blocked matrix
// products (pure Go); KNNWith runs them on an engine backend instead.
func KNN(trainFeats []float32, trainLabels []int, testFeats []float32, testLabels []int, dim, k int, tau float64, numClasses int) (top1, top5 float64, err error) {
	return KNNWith(nil, trainFeats, trainLabels, testFeats, testLabels, dim, k, tau, numClasses)
}

// KNNWith is KNN with the similarity products computed by backend b (for
// example oneDNN's GEMM); b == nil uses gonum's pure-Go GEMM.
func KNNWith(b engine.Backend, trainFeats []float32, trainLabels []int, testFeats []float32, testLabels []int, dim, k int, tau float64, numClasses int) (top1, top5 float64, err error) {
	if err := knnCheck("train", trainFeats, trainLabels, dim, numClasses); err != nil {
		return 0, 0, err
	}
	if err := knnCheck("test", testFeats, testLabels, dim, numClasses); err != nil {
		return 0, 0, err
	}
	if k < 1 {
		return 0, 0, fmt.Errorf("eval: kNN: k = %d, want >= 1", k)
	}
	if !(tau > 0) || math.IsInf(tau, 0) {
		return 0, 0, fmt.Errorf("eval: kNN: temperature %v, want > 0", tau)
	}
	nTrain, nTest := len(trainLabels), len(testLabels)
	k = min(k, nTrain)
	tr := knnNormalize(trainFeats, dim)
	te := knnNormalize(testFeats, dim)

	testBlock, trainBlock := knnTestBlock, knnTrainBlock
	sims := make([]float32, testBlock*min(trainBlock, nTrain))
	heaps := make([]knnHeap, testBlock)
	for i := range heaps {
		heaps[i] = knnHeap{sim: make([]float32, 0, k), idx: make([]int32, 0, k)}
	}
	workers := runtime.GOMAXPROCS(0)
	scores := make([][]float64, workers)
	order := make([][]int, workers)
	for w := range scores {
		scores[w] = make([]float64, numClasses)
		order[w] = make([]int, numClasses)
	}
	hits1 := make([]int, workers)
	hits5 := make([]int, workers)

	for t0 := 0; t0 < nTest; t0 += testBlock {
		tb := min(testBlock, nTest-t0)
		for i := 0; i < tb; i++ {
			heaps[i].sim, heaps[i].idx = heaps[i].sim[:0], heaps[i].idx[:0]
		}
		for r0 := 0; r0 < nTrain; r0 += trainBlock {
			rb := min(trainBlock, nTrain-r0)
			s := sims[:tb*rb]
			Products(b, s, te[t0*dim:(t0+tb)*dim], tr[r0*dim:(r0+rb)*dim], tb, rb, dim)
			parallelRows(tb, workers, func(_, i int) {
				h := &heaps[i]
				row := s[i*rb : (i+1)*rb]
				for j, v := range row {
					h.offer(v, int32(r0+j), k)
				}
			})
		}
		parallelRows(tb, workers, func(w, i int) {
			h := &heaps[i]
			sc := scores[w]
			clear(sc)
			for j, v := range h.sim {
				sc[trainLabels[h.idx[j]]] += math.Exp(float64(v) / tau)
			}
			ord := order[w]
			for c := range ord {
				ord[c] = c
			}
			// Highest score first; ties go to the lower class index.
			sort.SliceStable(ord, func(a, b int) bool { return sc[ord[a]] > sc[ord[b]] })
			y := testLabels[t0+i]
			if ord[0] == y {
				hits1[w]++
			}
			for _, c := range ord[:min(5, numClasses)] {
				if c == y {
					hits5[w]++
				}
			}
		})
	}
	var h1, h5 int
	for w := range hits1 {
		h1 += hits1[w]
		h5 += hits5[w]
	}
	return float64(h1) / float64(nTest), float64(h5) / float64(nTest), nil
}

func knnCheck(what string, x []float32, y []int, dim, classes int) error {
	if dim < 1 {
		return fmt.Errorf("eval: kNN: feature dim %d, want >= 1", dim)
	}
	if classes < 1 {
		return fmt.Errorf("eval: kNN: %d classes, want >= 1 (are the data labelled?)", classes)
	}
	if len(y) == 0 {
		return fmt.Errorf("eval: kNN: no %s samples", what)
	}
	if len(x) != len(y)*dim {
		return fmt.Errorf("eval: kNN: %s features have %d values, want %d samples x %d dims = %d", what, len(x), len(y), dim, len(y)*dim)
	}
	for i, l := range y {
		if l < 0 || l >= classes {
			return fmt.Errorf("eval: kNN: %s label %d of sample %d is outside [0, %d)", what, l, i, classes)
		}
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("eval: kNN: %s feature %d of sample %d is %v", what, i%dim, i/dim, v)
		}
	}
	return nil
}

// knnNormalize returns a copy of x [n, dim] with rows divided by
// max(||row||, 1e-12), as torch.nn.functional.normalize does.
func knnNormalize(x []float32, dim int) []float32 {
	out := make([]float32, len(x))
	for r := 0; r < len(x)/dim; r++ {
		row := x[r*dim : (r+1)*dim]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		inv := 1 / math.Max(math.Sqrt(ss), 1e-12)
		for j, v := range row {
			out[r*dim+j] = float32(float64(v) * inv)
		}
	}
	return out
}

// parallelRows calls f(worker, i) for i in [0, n) on up to workers
// goroutines, each row on one worker (par.For).
func parallelRows(n, workers int, f func(w, i int)) {
	par.For(n, min(workers, n), func(w, lo, hi int) {
		for i := lo; i < hi; i++ {
			f(w, i)
		}
	})
}

// knnHeap keeps the k largest similarities seen, as a min-heap ordered by
// (similarity, then larger index first) so that among equal similarities
// the earliest training samples are kept, as a stable sort would.
type knnHeap struct {
	sim []float32
	idx []int32
}

func (h *knnHeap) less(a, b int) bool {
	return h.sim[a] < h.sim[b] || (h.sim[a] == h.sim[b] && h.idx[a] > h.idx[b])
}

func (h *knnHeap) swap(a, b int) {
	h.sim[a], h.sim[b] = h.sim[b], h.sim[a]
	h.idx[a], h.idx[b] = h.idx[b], h.idx[a]
}

// offer considers (v, i); indices arrive in increasing order.
func (h *knnHeap) offer(v float32, i int32, k int) {
	if len(h.sim) < k {
		h.sim = append(h.sim, v)
		h.idx = append(h.idx, i)
		for c := len(h.sim) - 1; c > 0; {
			p := (c - 1) / 2
			if !h.less(c, p) {
				break
			}
			h.swap(c, p)
			c = p
		}
		return
	}
	if !(v > h.sim[0]) {
		return
	}
	h.sim[0], h.idx[0] = v, i
	n := len(h.sim)
	for p := 0; ; {
		l := 2*p + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, p) {
			break
		}
		h.swap(m, p)
		p = m
	}
}
