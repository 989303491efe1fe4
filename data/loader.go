package data

import (
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simclr-go/simclr/augment"
)

// Transform turns a decoded image into normalised network input of
// 3*Size()*Size() float32 values (CHW). *augment.Pipeline implements it.
// View and Eval are called concurrently from several goroutines. The
// source is an *augment.Image, or an *augment.Image8 from datasets that
// have one (SourceDataset); a transform gives the same result for both.
type Transform interface {
	Size() int
	// View writes one random augmented view of src, drawing all its
	// randomness from rng.
	View(dst []float32, src augment.Source, rng *rand.Rand) error
	// Eval writes the deterministic evaluation view of src.
	Eval(dst []float32, src augment.Source) error
}

// LoaderConfig configures a PairLoader.
type LoaderConfig struct {
	Batch    int    // images per batch (N); each yields 2 views
	Workers  int    // decoding/augmenting goroutines; 0: runtime.GOMAXPROCS(0)
	Prefetch int    // batches prepared ahead of the consumer; 0: 2
	Seed     uint64 // with the epoch, fixes the order and every random view
	SkipBad  bool   // replace unreadable images instead of stopping (see PairLoader)
	Shuffle  bool   // shuffle the order every epoch
	DropLast bool   // drop the last partial batch
	// Rank and Ranks shard the batches for data-parallel training: with
	// Ranks > 1 the loader yields only the Batch/Ranks images
	// [Rank*Batch/Ranks, (Rank+1)*Batch/Ranks) of each global batch of
	// Batch images. Order and views are those of the unsharded loader,
	// so the global batch is the same for every Ranks. Needs DropLast and
	// Batch a multiple of Ranks.
	Rank, Ranks int
}

// DefaultLoaderConfig is the configuration for SimCLR training: shuffled,
// last partial batch dropped, one worker per CPU.
func DefaultLoaderConfig(batch int, seed uint64) LoaderConfig {
	return LoaderConfig{Batch: batch, Seed: seed, Shuffle: true, DropLast: true}
}

// PairBatch is a batch of two views of N images. Views is float32 NCHW
// [2N,3,Size,Size]: rows 0..N-1 are view 1 of images Indices[0..N-1], rows
// N..2N-1 view 2 of the same images, the layout NT-Xent expects. Labels are
// the images' labels (-1 if unlabeled).
//
// A batch and its slices belong to the loader: they are valid until the
// loop body that received them returns, after which the loader reuses them.
// Copy whatever must live longer.
type PairBatch struct {
	Views   []float32
	N, Size int
	Indices []int
	Labels  []int
}

// EvalBatch is a batch of one deterministic view (Transform.Eval) per
// image: Views is float32 NCHW [N,3,Size,Size], row r is image Indices[r].
// The same validity rule as for PairBatch applies.
type EvalBatch struct {
	Views   []float32
	N, Size int
	Indices []int
	Labels  []int
}

// LoaderStats are counters accumulated over all iterations of a loader.
type LoaderStats struct {
	// WaitTime is how long the consumer waited for batches, from asking for
	// one to receiving it: data-loading time not hidden behind its work.
	WaitTime time.Duration
	// Batches is the number of batches delivered.
	Batches int
	// Skipped counts images replaced (PairLoader) or left out (EvalLoader)
	// because they could not be read; an image bad in every epoch counts once
	// an epoch.
	Skipped int
	// SkippedFiles holds one entry per distinct unreadable image, its error
	// text (which names the file and the problem), in order of discovery.
	SkippedFiles []string
}

// maxReplaceTries bounds the search for a readable replacement image.
const maxReplaceTries = 64

// job is one batch in flight, with buffers reused across batches.
type job struct {
	n       int
	idx     []int     // dataset indices requested for each row
	used    []int     // indices actually used (-1: left out)
	views   []float32 // rows of viewLen floats
	skips   [][]skip  // per row: unreadable images met
	pending atomic.Int64
	done    chan struct{}
	errMu   sync.Mutex
	errRow  int
	err     error
	pair    PairBatch
	eval    EvalBatch
}

type skip struct {
	index int
	err   error
}

func (j *job) setErr(row int, err error) {
	j.errMu.Lock()
	if j.err == nil || row < j.errRow { // the lowest row's error, whatever the scheduling
		j.err, j.errRow = err, row
	}
	j.errMu.Unlock()
}

type task struct {
	j   *job
	row int
}

// worker holds one goroutine's reusable random generator.
type worker struct {
	pcg *rand.PCG
	rng *rand.Rand
}

// engine runs the worker pool shared by both loaders.
type engine struct {
	ds       Dataset
	src      SourceDataset // ds, when it has one
	release8 bool          // Image8 results of src are pooled buffers to recycle
	workers  int
	prefetch int
	viewLen  int
	rows     int // view rows per image: 2 for pairs, 1 for eval
	seed     uint64
	skipBad  bool

	bad sync.Map // int -> error: images known to be unreadable

	mu       sync.Mutex
	stats    LoaderStats
	reported map[int]bool
	spare    []*job
}

func (e *engine) Stats() LoaderStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.SkippedFiles = append([]string(nil), s.SkippedFiles...)
	return s
}

func (e *engine) getJob(batch int) *job {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := len(e.spare); n > 0 {
		j := e.spare[n-1]
		e.spare = e.spare[:n-1]
		return j
	}
	return &job{
		idx:   make([]int, batch),
		used:  make([]int, batch),
		views: make([]float32, batch*e.rows*e.viewLen),
		skips: make([][]skip, batch),
	}
}

// image reads image i. With skipBad, an unreadable image is replaced by the
// first readable one of a pseudo-random sequence fixed by (seed, i), so the
// replacement does not depend on scheduling.
func (e *engine) image(i int, skips *[]skip) (augment.Source, int, error) {
	img, err := e.read(i)
	if err == nil || !e.skipBad {
		return img, i, err
	}
	*skips = append(*skips, skip{i, err})
	if e.rows == 1 { // eval: leave it out
		return nil, -1, nil
	}
	n := uint64(e.ds.Len())
	for k := uint64(1); k <= maxReplaceTries; k++ {
		c := int(reduce(mix(e.seed^mix(uint64(i)<<8|k)), n))
		if img, err = e.read(c); err == nil {
			return img, c, nil
		}
		*skips = append(*skips, skip{c, err})
	}
	return nil, -1, fmt.Errorf("data: %s is unreadable and so were %d candidates for its replacement; too many bad images (last: %w)", e.ds.Name(i), maxReplaceTries, err)
}

func (e *engine) read(i int) (augment.Source, error) {
	if err, ok := e.bad.Load(i); ok {
		return nil, err.(error)
	}
	img, err := e.decode(i)
	if err != nil {
		if e.skipBad {
			e.bad.Store(i, err)
		}
		return nil, err
	}
	return img, nil
}

// decode returns image i in the dataset's cheapest exact form.
func (e *engine) decode(i int) (augment.Source, error) {
	if e.src != nil {
		return e.src.Source(i)
	}
	img, err := e.ds.Image(i)
	if err != nil {
		return nil, err // not a nil *Image in a non-nil Source
	}
	return img, nil
}

// done recycles src's buffer when the dataset handed out a pooled one.
func (e *engine) done(src augment.Source) {
	if img, ok := src.(*augment.Image8); ok && e.release8 {
		ReleaseImage8(img)
	}
}

// iterate produces batches first..last-1: setup fills a job's n and idx,
// process fills one row; yield receives finished batches in order. It
// returns after every goroutine it started has exited.
func (e *engine) iterate(first, last, batch int, setup func(b int, j *job),
	process func(w *worker, j *job, row int) error, yield func(j *job) bool) error {
	if first >= last {
		return nil
	}
	stop := make(chan struct{})
	tasks := make(chan task, 2*e.workers)
	ready := make(chan *job, e.prefetch+1)
	free := make(chan *job, e.prefetch+1)
	var all []*job
	for range min(e.prefetch+1, last-first) {
		j := e.getJob(batch)
		all = append(all, j)
		free <- j
	}
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
		e.mu.Lock()
		e.spare = append(e.spare, all...)
		e.mu.Unlock()
	}()

	wg.Add(1)
	go func() { // dispatcher: hands out rows of batches in order
		defer wg.Done()
		defer close(tasks)
		for b := first; b < last; b++ {
			var j *job
			select {
			case j = <-free:
			case <-stop:
				return
			}
			setup(b, j)
			j.err, j.done = nil, make(chan struct{})
			j.pending.Store(int64(j.n))
			select {
			case ready <- j:
			case <-stop:
				return
			}
			for r := range j.n {
				select {
				case tasks <- task{j, r}:
				case <-stop:
					return
				}
			}
		}
		close(ready)
	}()
	for range e.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			backgroundThread()
			pcg := rand.NewPCG(0, 0)
			w := &worker{pcg: pcg, rng: rand.New(pcg)}
			for {
				select {
				case <-stop:
					return
				case t, ok := <-tasks:
					if !ok {
						return
					}
					t.j.skips[t.row] = t.j.skips[t.row][:0]
					if err := process(w, t.j, t.row); err != nil {
						t.j.setErr(t.row, err)
					}
					if t.j.pending.Add(-1) == 0 {
						close(t.j.done)
					}
				}
			}
		}()
	}

	for {
		t0 := time.Now()
		j, ok := <-ready
		if ok {
			<-j.done
		}
		wait := time.Since(t0)
		e.mu.Lock()
		e.stats.WaitTime += wait
		if ok {
			e.recordSkips(j)
			if j.err == nil {
				e.stats.Batches++
			}
		}
		e.mu.Unlock()
		if !ok {
			return nil
		}
		if j.err != nil {
			return j.err
		}
		if !yield(j) {
			return nil
		}
		free <- j
	}
}

// recordSkips adds a finished job's unreadable images to the stats, in row
// order; e.mu must be held.
func (e *engine) recordSkips(j *job) {
	for r := range j.n {
		for k, s := range j.skips[r] {
			if k == 0 {
				e.stats.Skipped++
			}
			if !e.reported[s.index] {
				if e.reported == nil {
					e.reported = map[int]bool{}
				}
				e.reported[s.index] = true
				e.stats.SkippedFiles = append(e.stats.SkippedFiles, s.err.Error())
			}
		}
	}
}

func newEngine(ds Dataset, tf Transform, workers, prefetch, rows int) (*engine, error) {
	if ds == nil || tf == nil {
		return nil, errors.New("data: loader needs a dataset and a transform")
	}
	if ds.Len() == 0 {
		return nil, errors.New("data: loader: the dataset is empty")
	}
	if workers < 0 || prefetch < 0 {
		return nil, fmt.Errorf("data: loader: negative workers (%d) or prefetch (%d)", workers, prefetch)
	}
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if prefetch == 0 {
		prefetch = 2
	}
	s := tf.Size()
	if s <= 0 {
		return nil, fmt.Errorf("data: loader: transform output size %d, want > 0", s)
	}
	e := &engine{ds: ds, workers: workers, prefetch: prefetch, viewLen: 3 * s * s, rows: rows}
	if sd, ok := ds.(SourceDataset); ok {
		e.src = sd
		_, e.release8 = ds.(interface{ pooled8() })
	}
	return e, nil
}

// PairLoader yields batches of two augmented views of each image, for
// contrastive training.
//
// Determinism: the image order of epoch e is a pure function of (Seed, e),
// and each view's randomness comes from a generator seeded by (Seed, e,
// image index, view), so the batch sequence depends only on (Seed, e), not
// on Workers or scheduling; EpochFrom resumes mid-epoch.
//
// Bad images: without SkipBad an unreadable image stops the iteration with
// an error naming the file. With SkipBad it is replaced, in its row, by a
// readable image picked deterministically from (Seed, its index), keeping
// batches full; the replacement's views still use the bad image's
// (Seed, e, index, view) randomness, and Indices/Labels report the image
// actually used. Replacements are counted in Stats.
type PairLoader struct {
	eng  *engine
	tf   Transform
	cfg  LoaderConfig
	size int
}

// NewPairLoader returns a loader of view pairs of ds made by tf.
func NewPairLoader(ds Dataset, tf Transform, cfg LoaderConfig) (*PairLoader, error) {
	if cfg.Batch < 1 {
		return nil, fmt.Errorf("data: pair loader: batch size %d, want >= 1", cfg.Batch)
	}
	if cfg.Ranks > 1 {
		if cfg.Rank < 0 || cfg.Rank >= cfg.Ranks {
			return nil, fmt.Errorf("data: pair loader: rank %d outside [0,%d)", cfg.Rank, cfg.Ranks)
		}
		if cfg.Batch%cfg.Ranks != 0 {
			return nil, fmt.Errorf("data: pair loader: batch %d is not a multiple of the %d ranks", cfg.Batch, cfg.Ranks)
		}
		if !cfg.DropLast {
			return nil, fmt.Errorf("data: pair loader: sharding over ranks needs DropLast (equal shards)")
		}
	}
	eng, err := newEngine(ds, tf, cfg.Workers, cfg.Prefetch, 2)
	if err != nil {
		return nil, err
	}
	eng.seed, eng.skipBad = cfg.Seed, cfg.SkipBad
	l := &PairLoader{eng: eng, tf: tf, cfg: cfg, size: tf.Size()}
	if l.NumBatches() == 0 {
		return nil, fmt.Errorf("data: pair loader: %d images make no full batch of %d (DropLast); use a smaller batch", ds.Len(), cfg.Batch)
	}
	return l, nil
}

// NumBatches is the number of batches in one epoch.
func (l *PairLoader) NumBatches() int {
	n := l.eng.ds.Len()
	if l.cfg.DropLast {
		return n / l.cfg.Batch
	}
	return (n + l.cfg.Batch - 1) / l.cfg.Batch
}

// Order returns the image order of epoch e: batch b holds images
// Order(e)[b*Batch:(b+1)*Batch] (before any SkipBad replacement).
func (l *PairLoader) Order(e int) []int {
	return epochOrder(l.eng.ds.Len(), l.cfg.Seed, e, l.cfg.Shuffle)
}

// Stats returns the loader's counters so far.
func (l *PairLoader) Stats() LoaderStats { return l.eng.Stats() }

// Epoch iterates over the batches of epoch e. On error it yields (nil, err)
// once and stops. Breaking out of the loop stops the workers before the
// range statement ends.
func (l *PairLoader) Epoch(e int) iter.Seq2[*PairBatch, error] { return l.EpochFrom(e, 0) }

// EpochFrom iterates over batches start, start+1, ... of epoch e: the same
// batches Epoch(e) yields from its start-th on, for resuming a run.
func (l *PairLoader) EpochFrom(e, start int) iter.Seq2[*PairBatch, error] {
	return func(yield func(*PairBatch, error) bool) {
		nb := l.NumBatches()
		if start < 0 || start > nb {
			yield(nil, fmt.Errorf("data: EpochFrom: start batch %d outside [0,%d]", start, nb))
			return
		}
		order := l.Order(e)
		B, vl, n := l.cfg.Batch, l.eng.viewLen, len(order)
		per, lo := B, 0 // this rank's share of each batch
		if l.cfg.Ranks > 1 {
			per = B / l.cfg.Ranks
			lo = l.cfg.Rank * per
		}
		seedHi := mix(l.cfg.Seed ^ mix(uint64(e)+0x5eed))
		setup := func(b int, j *job) {
			j.n = min(per, n-b*B-lo)
			copy(j.idx, order[b*B+lo:b*B+lo+j.n])
		}
		process := func(w *worker, j *job, r int) error {
			i := j.idx[r]
			img, used, err := l.eng.image(i, &j.skips[r])
			if err != nil {
				return err
			}
			j.used[r] = used
			defer l.eng.done(img)
			for v := range 2 {
				w.pcg.Seed(seedHi, mix(uint64(i)<<1|uint64(v)))
				row := v*j.n + r
				if err := l.tf.View(j.views[row*vl:(row+1)*vl], img, w.rng); err != nil {
					return fmt.Errorf("data: view %d of %s: %w", v+1, l.eng.ds.Name(used), err)
				}
			}
			return nil
		}
		err := l.eng.iterate(start, nb, per, setup, process, func(j *job) bool {
			p := &j.pair
			p.N, p.Size = j.n, l.size
			p.Views = j.views[:2*j.n*vl]
			p.Indices = append(p.Indices[:0], j.used[:j.n]...)
			p.Labels = p.Labels[:0]
			for _, i := range p.Indices {
				p.Labels = append(p.Labels, l.eng.ds.Label(i))
			}
			return yield(p, nil)
		})
		if err != nil {
			yield(nil, err)
		}
	}
}

// EvalLoader yields one deterministic view (Transform.Eval) per image, in
// dataset order, for feature extraction; the last partial batch is kept.
type EvalLoader struct {
	// SkipBad leaves unreadable images out of their batch (Indices says
	// which images a batch holds) instead of stopping with an error. Set it
	// before iterating.
	SkipBad bool

	eng   *engine
	tf    Transform
	batch int
	size  int
}

// NewEvalLoader returns an evaluation loader; workers 0 means
// runtime.GOMAXPROCS(0).
func NewEvalLoader(ds Dataset, tf Transform, batch, workers int) (*EvalLoader, error) {
	if batch < 1 {
		return nil, fmt.Errorf("data: eval loader: batch size %d, want >= 1", batch)
	}
	eng, err := newEngine(ds, tf, workers, 0, 1)
	if err != nil {
		return nil, err
	}
	return &EvalLoader{eng: eng, tf: tf, batch: batch, size: tf.Size()}, nil
}

// NumBatches is the number of batches All yields (fewer if SkipBad empties one).
func (l *EvalLoader) NumBatches() int { return (l.eng.ds.Len() + l.batch - 1) / l.batch }

// Stats returns the loader's counters so far.
func (l *EvalLoader) Stats() LoaderStats { return l.eng.Stats() }

// All iterates over the dataset in order. On error it yields (nil, err)
// once and stops.
func (l *EvalLoader) All() iter.Seq2[*EvalBatch, error] {
	return func(yield func(*EvalBatch, error) bool) {
		l.eng.skipBad = l.SkipBad
		B, vl, n := l.batch, l.eng.viewLen, l.eng.ds.Len()
		setup := func(b int, j *job) {
			j.n = min(B, n-b*B)
			for r := range j.n {
				j.idx[r] = b*B + r
			}
		}
		process := func(w *worker, j *job, r int) error {
			img, used, err := l.eng.image(j.idx[r], &j.skips[r])
			j.used[r] = used
			if err != nil || used < 0 {
				return err
			}
			defer l.eng.done(img)
			if err := l.tf.Eval(j.views[r*vl:(r+1)*vl], img); err != nil {
				return fmt.Errorf("data: eval view of %s: %w", l.eng.ds.Name(used), err)
			}
			return nil
		}
		err := l.eng.iterate(0, l.NumBatches(), B, setup, process, func(j *job) bool {
			p := &j.eval
			p.Indices, p.Labels = p.Indices[:0], p.Labels[:0]
			k := 0 // rows kept, compacted in place
			for r := range j.n {
				if j.used[r] < 0 {
					continue
				}
				if k != r {
					copy(j.views[k*vl:(k+1)*vl], j.views[r*vl:(r+1)*vl])
				}
				p.Indices = append(p.Indices, j.used[r])
				p.Labels = append(p.Labels, l.eng.ds.Label(j.used[r]))
				k++
			}
			if k == 0 {
				return true
			}
			p.N, p.Size, p.Views = k, l.size, j.views[:k*vl]
			return yield(p, nil)
		})
		if err != nil {
			yield(nil, err)
		}
	}
}

// epochOrder is the image order of an epoch: the identity, or a
// Fisher-Yates shuffle driven by PCG seeded from (seed, epoch). It uses only
// PCG's specified output, so the order is stable across Go releases.
func epochOrder(n int, seed uint64, epoch int, shuffle bool) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if !shuffle {
		return order
	}
	pcg := rand.NewPCG(mix(seed), mix(uint64(epoch)^0x9e3779b97f4a7c15))
	for i := n - 1; i > 0; i-- {
		j := int(reduce(pcg.Uint64(), uint64(i+1)))
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// reduce maps a uniform 64-bit x to [0,n) (Lemire's multiply-shift; the bias
// is below n/2^64).
func reduce(x, n uint64) uint64 {
	hi, _ := bits.Mul64(x, n)
	return hi
}

// mix is the SplitMix64 finaliser, used to derive independent seeds.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
