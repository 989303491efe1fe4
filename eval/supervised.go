package eval

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/internal/par"
	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/optim"
)

// Embed runs net over every batch of loader in inference mode (no tape
// recording, BN with running statistics) and calls fn with the batch and
// its outputs [b.N, net.OutDim()], row-major. The slices are reused after fn
// returns; memory is bounded by one batch.
func Embed(tp *engine.Tape, net nn.Net, loader *data.EvalLoader, fn func(b *data.EvalBatch, out []float32) error) error {
	tp.SetGrad(false)
	defer tp.SetGrad(true)
	dim := net.OutDim()
	var buf []float32
	for b, err := range loader.All() {
		if err != nil {
			return err
		}
		x := engine.FromData(b.Views, b.N, 3, b.Size, b.Size)
		h := tp.Plain(net.Forward(tp, x, false))
		if h.Len() != b.N*dim {
			tp.Reset()
			return fmt.Errorf("embed: network gave %v for a batch of %d (want [%d %d])", h.Shape(), b.N, b.N, dim)
		}
		buf = append(buf[:0], h.Data()...)
		tp.Reset()
		if err := fn(b, buf); err != nil {
			return err
		}
	}
	return nil
}

// LinearHead is a new classification layer on top of an encoder:
// logits = h Wᵀ + B, zero-initialised as in the paper's linear evaluation.
type LinearHead struct {
	W *engine.Tensor // [classes, dim]
	B *engine.Tensor // [classes]
}

// NewLinearHead returns a zero-initialised trainable head.
func NewLinearHead(dim, classes int) *LinearHead {
	h := &LinearHead{W: engine.New(classes, dim), B: engine.New(classes)}
	h.W.SetRequiresGrad(true)
	h.B.SetRequiresGrad(true)
	return h
}

// Params names the head's tensors as a torchvision classifier's fc.
func (h *LinearHead) Params() []nn.Param {
	return []nn.Param{{Name: "fc.weight", T: h.W, Kind: nn.Weight}, {Name: "fc.bias", T: h.B, Kind: nn.Bias}}
}

// SupervisedConfig controls TrainSupervised.
type SupervisedConfig struct {
	Epochs int
	Batch  int
	// LR is the base learning rate, scaled by Batch/256 and decayed with a
	// cosine schedule to 0 (no warm-up), with SGD, Nesterov momentum 0.9 and
	// no weight decay, as in the paper's B.5/B.6.
	LR float64
	// FineTune trains the encoder too, with BN in training mode; otherwise
	// the encoder is frozen, run without recording and with BN in inference
	// mode, and only the head learns.
	FineTune bool
	Seed     uint64
	Workers  int       // view goroutines; 0: 2
	Log      io.Writer // per-epoch progress; nil: none
}

// TrainSupervised trains head (and, with FineTune, enc) to classify the
// images idx of ds with labels label(i) in [0, classes), on random views
// from tf (crop+flip for the paper's protocols). Batch order and views are
// reproducible from cfg.Seed.
func TrainSupervised(tp *engine.Tape, enc nn.Net, head *LinearHead, ds data.Dataset, idx []int, label func(i int) int, tf data.Transform, cfg SupervisedConfig) error {
	if len(idx) == 0 {
		return errors.New("supervised training: no labelled images")
	}
	if cfg.Epochs < 1 || cfg.Batch < 1 || !(cfg.LR > 0) {
		return fmt.Errorf("supervised training: epochs %d, batch %d, lr %g: all must be positive", cfg.Epochs, cfg.Batch, cfg.LR)
	}
	batch := min(cfg.Batch, len(idx))
	params := head.Params()
	if cfg.FineTune {
		params = append(enc.Params(), params...)
	}
	opt, err := optim.NewSGD(params, optim.SGDConfig{Momentum: 0.9, Nesterov: true})
	if err != nil {
		return err
	}
	st := &optim.Step{Tape: tp, Opt: opt}
	steps := len(idx) / batch // the last partial batch is dropped (BN needs > 1 row)
	// lr cfg.LR·B/256 with cosine decay to 0 and no warm-up.
	sched := optim.Schedule{Base: cfg.LR, Scaling: "linear", Batch: batch, TotalSteps: cfg.Epochs * steps}
	size := tf.Size()
	vl := 3 * size * size
	views := make([]float32, batch*vl)
	labels := make([]int, batch)
	dim := enc.OutDim()
	hbuf := make([]float32, batch*dim)
	workers := cfg.Workers
	if workers <= 0 {
		workers = 2
	}
	order := append([]int(nil), idx...)
	step := 0
	for ep := 0; ep < cfg.Epochs; ep++ {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(ep)+1))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		lossSum := 0.0
		for s := 0; s < steps; s++ {
			rows := order[s*batch : (s+1)*batch]
			if err := makeViews(ds, tf, rows, views, cfg.Seed, ep, s, workers); err != nil {
				return err
			}
			for r, i := range rows {
				labels[r] = label(i)
			}
			l, err := st.Run(float32(sched.LR(step)), func(tp *engine.Tape) (*engine.Tensor, error) {
				x := engine.FromData(views, batch, 3, size, size)
				var h *engine.Tensor
				if cfg.FineTune {
					h = enc.Forward(tp, x, true)
				} else {
					tp.SetGrad(false)
					hp := tp.Plain(enc.Forward(tp, x, false))
					copy(hbuf, hp.Data())
					tp.SetGrad(true)
					h = engine.FromData(hbuf, batch, dim)
				}
				logits := tp.Linear(tp.Plain(h), head.W, head.B)
				return tp.CrossEntropy(logits, labels), nil
			})
			if errors.Is(err, optim.ErrNonFinite) {
				tp.Reset()
				return fmt.Errorf("supervised training: loss became %v at epoch %d step %d (lower the learning rate)", l, ep+1, s+1)
			}
			if err != nil {
				tp.Reset()
				return fmt.Errorf("supervised training: %w", err)
			}
			lossSum += float64(l)
			step++
		}
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "epoch %d/%d: loss %.4f\n", ep+1, cfg.Epochs, lossSum/float64(steps))
		}
	}
	tp.Reset()
	return nil
}

// makeViews writes one random view of each image rows[r] into views, in
// parallel; each row's randomness comes from (seed, epoch, step, row) so the
// result does not depend on scheduling.
func makeViews(ds data.Dataset, tf data.Transform, rows []int, views []float32, seed uint64, ep, step, workers int) error {
	vl := len(views) / len(rows)
	errs := make([]error, len(rows))
	par.Each(len(rows), workers, func(r int) {
		img, err := ds.Image(rows[r])
		if err != nil {
			errs[r] = err
			return
		}
		rng := rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, uint64(ep)<<40|uint64(step)<<20|uint64(r)))
		if err := tf.View(views[r*vl:(r+1)*vl], img, rng); err != nil {
			errs[r] = fmt.Errorf("view of %s: %w", ds.Name(rows[r]), err)
		}
	})
	return errors.Join(errs...)
}

// ClassifierAccuracy runs enc and head over loader (inference mode) and
// returns top-1/top-5 against label(index); rows whose label is negative
// are an error.
func ClassifierAccuracy(tp *engine.Tape, enc nn.Net, head *LinearHead, loader *data.EvalLoader, label func(i int) int) (top1, top5 float64, err error) {
	classes := head.W.Dim(0)
	dim := head.W.Dim(1)
	w, b := head.W.Data(), head.B.Data()
	var scores []float64
	var labels []int
	err = Embed(tp, enc, loader, func(bt *data.EvalBatch, h []float32) error {
		for r := 0; r < bt.N; r++ {
			l := label(bt.Indices[r])
			if l < 0 {
				return fmt.Errorf("test image %d has no label", bt.Indices[r])
			}
			labels = append(labels, l)
			for k := 0; k < classes; k++ {
				s := float64(b[k])
				for j := 0; j < dim; j++ {
					s += float64(w[k*dim+j]) * float64(h[r*dim+j])
				}
				scores = append(scores, s)
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	top1, top5 = TopK(scores, labels, classes)
	return top1, top5, nil
}
