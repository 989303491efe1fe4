package train

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/simclr-go/simclr/dist"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/nn"
	"go.yaml.in/yaml/v3"
)

// distributed is the data-parallel side of a run (package dist): what a
// training step adds when the global batch is spread over several
// processes. With one process every method is a no-op, so the loop is the
// same code either way.
//
// Semantics (one process is the reference): rank r loads the contiguous
// slice r of every global batch; the projections are all-gathered and every
// rank computes the global NT-Xent, keeping the gradient of its own rows;
// batch norms use global statistics (--bn global, engine.Tape.SetBNSync);
// the parameter gradients are summed over the ranks in buckets, so the
// optimizer step is the same on every rank. Only rank 0 writes the run
// directory and shows progress; the others wait for it at epoch ends.
type distributed struct {
	comm       *dist.Timed
	grads      *dist.GradSync
	params     []*engine.Tensor
	checkEvery int
	dumpGrads  string // write the summed gradients of step 1 here (debug, tests)
}

func newDistributed(c dist.Comm) *distributed {
	if c == nil {
		c = dist.Single()
	}
	return &distributed{comm: dist.NewTimed(c)}
}

func (d *distributed) size() int  { return d.comm.Size() }
func (d *distributed) root() bool { return d.comm.Rank() == 0 }

// checkBatch is the error for a global batch the ranks cannot share.
func (d *distributed) checkBatch(batch int) error {
	if n := d.size(); batch%n != 0 {
		return fmt.Errorf("--batch %d is not a multiple of the %d processes (mpirun -np %d): --batch is the global batch, and each process takes batch/N of its images", batch, n, n)
	}
	return nil
}

// rankInvariant is the part of a config that must be the same on every
// rank: everything but the run directory and the knobs of rank 0's side
// effects (kNN monitor, logging, checkpoint retention) and of one host's
// resources (threads, workers).
func (c Config) rankInvariant() Config {
	h := c
	h.Out, h.Config = "", ""
	h.Threads, h.ThreadsForce, h.Workers = 0, false, 0
	h.LogEvery, h.KeepCheckpoints = 0, 0
	h.KNNEvery, h.KNNTrain, h.KNNTest, h.KNNK, h.KNNTau = 0, "", "", 0, 0
	return h
}

// checkConfig refuses to start when the ranks were given different
// configurations (a different --data or --lr on one host, ...) or see a
// different number of training images.
func (d *distributed) checkConfig(cfg Config, images int) error {
	if d.size() == 1 {
		return nil
	}
	y, err := cfg.rankInvariant().yamlBytes()
	if err != nil {
		return err
	}
	y = fmt.Appendf(y, "training_images: %d\n", images)
	all := dist.AllgatherVar(d.comm, y)
	for r, b := range all {
		if !bytes.Equal(b, all[0]) {
			return fmt.Errorf("the processes were started with different configurations: rank %d differs from rank 0 in %s; give every process the same flags and config file (and the same dataset at the --data path on every host)",
				r, strings.Join(yamlDiff(all[0], b), ", "))
		}
	}
	return nil
}

// yamlDiff lists the top-level keys whose values differ between two YAML
// documents.
func yamlDiff(a, b []byte) []string {
	var ma, mb map[string]any
	_ = yaml.Unmarshal(a, &ma)
	_ = yaml.Unmarshal(b, &mb)
	var keys []string
	for k, v := range ma {
		if !reflect.DeepEqual(v, mb[k]) {
			keys = append(keys, fmt.Sprintf("%s (%v vs %v)", k, v, mb[k]))
		}
	}
	for k, v := range mb {
		if _, ok := ma[k]; !ok {
			keys = append(keys, fmt.Sprintf("%s (unset vs %v)", k, v))
		}
	}
	sort.Strings(keys)
	return keys
}

// start makes every rank begin from rank 0's model (weights and BN
// statistics) and prepares the gradient buckets.
func (d *distributed) start(m *nn.Model, checkEvery int) {
	d.checkEvery = checkEvery
	var state []*engine.Tensor
	for _, p := range m.Params() {
		d.params = append(d.params, p.T)
		state = append(state, p.T)
	}
	for _, b := range m.Buffers() {
		state = append(state, b.T)
	}
	dist.BcastTensors(d.comm, state)
	d.grads = dist.NewGradSync(d.comm, d.params, 0)
}

// gather turns this rank's projections into the global batch's.
func (d *distributed) gather(tp *engine.Tape, z *engine.Tensor) *engine.Tensor {
	return dist.GatherViews(tp, d.comm, z)
}

// afterBackward sums the gradients over the ranks (step is 1-based).
func (d *distributed) afterBackward(step int) error {
	d.grads.Sync()
	if step == 1 && d.dumpGrads != "" && d.root() {
		var b []byte
		for _, p := range d.params {
			for _, v := range p.Grad().Data() {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
			}
		}
		if err := os.WriteFile(d.dumpGrads, b, 0o644); err != nil {
			return fmt.Errorf("gradient dump: %w", err)
		}
	}
	return nil
}

// afterStep runs the debug weight check every checkEvery steps.
func (d *distributed) afterStep(step int) error {
	if d.size() == 1 || d.checkEvery == 0 || step%d.checkEvery != 0 {
		return nil
	}
	return dist.CheckSameHash(d.comm, fmt.Sprintf("the weights after step %d", step), dist.Hash(d.params))
}

// wait holds the other ranks while rank 0 writes or measures (checkpoint,
// plots, kNN monitor).
func (d *distributed) wait() {
	if d.size() > 1 {
		d.comm.Barrier()
	}
}

// gatherLabels turns this rank's batch labels into the global batch's.
func (d *distributed) gatherLabels(labels []int) ([]int, error) {
	return dist.GatherLabels(d.comm, labels), nil
}
