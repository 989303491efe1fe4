package train

import (
	"fmt"
	"strings"
	"time"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/nn"
)

// knnMonitor measures weighted kNN accuracy of the encoder's h during
// training: a labelled memory bank and a labelled query set, both seen
// through the deterministic evaluation transform.
type knnMonitor struct {
	bank, query *data.EvalLoader
	// Sizes and sources of the two sets, for messages and tests.
	bankN, queryN       int
	bankSpec, querySpec string
	classes             int
	k                   int
	tau                 float64
}

// knnEvalBatch is the batch of the monitor's feature extraction.
const knnEvalBatch = 256

// knnHoldout is the fraction 1/knnHoldout of a labelled dataset without a
// test split that serves as queries (every knnHoldout-th image).
const knnHoldout = 5

// newKNNMonitor picks the monitor's data: --knn-train and --knn-test when
// given; otherwise the training data as the bank (when labelled) and its
// test split as queries (when it has a distinct one), or else every 5th
// labelled image held out as queries. It returns nil (monitor off) for
// knn_every 0, unlabelled data or an empty bank or query set (a tiny
// dataset), saying so on the progress output.
func newKNNMonitor(cfg Config, train data.Dataset, tf *augment.Pipeline, prog *progress) (*knnMonitor, error) {
	if cfg.KNNEvery == 0 {
		return nil, nil
	}
	var bank, query data.Dataset
	var err error
	querySpec := cfg.KNNTest
	bankSpec := cfg.KNNTrain
	if bankSpec == "" {
		bankSpec, bank = cfg.Data, train
	} else if bank, err = data.Open(bankSpec); err != nil {
		return nil, fmt.Errorf("knn_train: %w", err)
	}
	if bank.NumClasses() == 0 && cfg.KNNTrain == "" {
		// Unlabelled training data with labelled splits beside it
		// (stl10:PATH@unlabeled): use its @train split as the bank.
		if spec, ds := siblingSplit(cfg.Data, "train"); ds != nil && ds.NumClasses() > 0 {
			bankSpec, bank = spec, ds
		}
	}
	if bank.NumClasses() == 0 {
		if cfg.KNNTrain != "" {
			return nil, fmt.Errorf("knn_train %s: the dataset has no labels", cfg.KNNTrain)
		}
		prog.println("kNN monitor off: %s has no labels (give --knn-train and --knn-test labelled data)", cfg.Data)
		return nil, nil
	}
	if cfg.KNNTest != "" {
		if query, err = data.Open(cfg.KNNTest); err != nil {
			return nil, fmt.Errorf("knn_test: %w", err)
		}
		if query.NumClasses() != bank.NumClasses() {
			return nil, fmt.Errorf("knn_test %s has %d classes, the kNN memory bank %s has %d", cfg.KNNTest, query.NumClasses(), bankSpec, bank.NumClasses())
		}
		qn, bn := query.ClassNames(), bank.ClassNames()
		if qn != nil && bn != nil && strings.Join(qn, "\x00") != strings.Join(bn, "\x00") {
			return nil, fmt.Errorf("knn_test %s and the kNN memory bank %s have different classes (%s... vs %s...)", cfg.KNNTest, bankSpec, qn[0], bn[0])
		}
	} else {
		querySpec, query = testSplit(bankSpec, bank)
		if query == nil {
			querySpec = fmt.Sprintf("%s (every %dth image)", bankSpec, knnHoldout)
			n := bank.Len()
			bank, query = holdout(bank, knnHoldout)
			prog.println("kNN monitor: %s has no separate test split; every %dth of its %d images is a query, the rest the memory bank", bankSpec, knnHoldout, n)
		}
	}
	if query.Len() == 0 || bank.Len() == 0 {
		// Too few images to measure anything: training goes on without it.
		prog.println("kNN monitor off: the memory bank %s has %d images and the query set %s has %d; both need at least one (give --knn-train and --knn-test, or --knn-every 0)",
			bankSpec, bank.Len(), querySpec, query.Len())
		return nil, nil
	}
	m := &knnMonitor{classes: bank.NumClasses(), k: cfg.KNNK, tau: cfg.KNNTau,
		bankN: bank.Len(), queryN: query.Len(), bankSpec: bankSpec, querySpec: querySpec}
	if m.bank, err = data.NewEvalLoader(bank, tf, knnEvalBatch, cfg.Workers); err != nil {
		return nil, fmt.Errorf("kNN memory bank: %w", err)
	}
	if m.query, err = data.NewEvalLoader(query, tf, knnEvalBatch, cfg.Workers); err != nil {
		return nil, fmt.Errorf("kNN queries: %w", err)
	}
	m.bank.SkipBad, m.query.SkipBad = cfg.SkipBad, cfg.SkipBad
	return m, nil
}

// testSplit opens the @test split of spec's dataset when it exists, is
// labelled like bank and is not bank itself.
func testSplit(spec string, bank data.Dataset) (string, data.Dataset) {
	s, q := siblingSplit(spec, "test")
	if q == nil || q.Len() == 0 || q.NumClasses() != bank.NumClasses() || q.Name(0) == bank.Name(0) {
		return "", nil
	}
	return s, q
}

// siblingSplit opens split of the dataset named by spec (nil when spec
// already names that split or it cannot be opened).
func siblingSplit(spec, split string) (string, data.Dataset) {
	kind, path, cur, err := data.ParseSpec(spec)
	if err != nil || cur == split {
		return "", nil
	}
	s := kind + "@" + split
	if path != "" {
		s = kind + ":" + path + "@" + split
	}
	ds, err := data.Open(s)
	if err != nil {
		return "", nil
	}
	return s, ds
}

// measure extracts features of both sets with the encoder in eval mode and
// returns the kNN top-1 and top-5 accuracy and the seconds it took.
func (m *knnMonitor) measure(tp *engine.Tape, enc nn.Net) (top1, top5, secs float64, err error) {
	t0 := time.Now()
	bf, bl, err := eval.Features(tp, enc, m.bank)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("kNN memory bank features: %w", err)
	}
	qf, ql, err := eval.Features(tp, enc, m.query)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("kNN query features: %w", err)
	}
	top1, top5, err = eval.KNNWith(eval.ProductBackend(tp.Backend()), bf, bl, qf, ql, enc.OutDim(), m.k, m.tau, m.classes)
	if err != nil {
		return 0, 0, 0, err
	}
	return top1, top5, time.Since(t0).Seconds(), nil
}

// subset is a view of some images of a dataset.
type subset struct {
	data.Dataset
	idx []int
}

func (s subset) Len() int { return len(s.idx) }
func (s subset) Image(i int) (*augment.Image, error) {
	if i < 0 || i >= len(s.idx) {
		return nil, fmt.Errorf("kNN subset: image index %d out of range [0,%d)", i, len(s.idx))
	}
	return s.Dataset.Image(s.idx[i])
}
func (s subset) Label(i int) int   { return s.Dataset.Label(s.idx[i]) }
func (s subset) Name(i int) string { return s.Dataset.Name(s.idx[i]) }

// holdout splits ds into a bank (all but every k-th image) and queries
// (images k-1, 2k-1, ...).
func holdout(ds data.Dataset, k int) (bank, query data.Dataset) {
	var b, q []int
	for i := 0; i < ds.Len(); i++ {
		if i%k == k-1 {
			q = append(q, i)
		} else {
			b = append(b, i)
		}
	}
	return subset{ds, b}, subset{ds, q}
}
