// Package optim holds the optimizers that update nn.Params from their
// gradients (LARS as in google-research/simclr, SGD with momentum, Adam and
// AdamW with PyTorch's semantics) and the learning-rate schedule (batch
// scaling, linear warm-up, cosine decay).
//
// Optimizers keep their state (momentum, moments) in float32 buffers created
// on the first Step, so a training loop's steady state allocates nothing.
// The state can be read and restored by name for checkpoints; see
// Optimizer.StateTensors.
package optim

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/simclr-go/simclr/nn"
)

// Optimizer updates a fixed list of parameters from their gradients.
type Optimizer interface {
	// Step applies one update with learning rate lr. Parameters whose
	// gradient is nil (never reached by Backward) are left alone, as in
	// PyTorch.
	Step(lr float32)
	// ZeroGrad zeroes every parameter's gradient.
	ZeroGrad()
	// StateTensors returns the optimizer's state by name, for example
	// "momentum/layer1.0.conv1.weight" or "exp_avg/fc.weight". It is empty
	// before the first Step. The slices alias the optimizer's buffers: copy
	// them (or write them out) before the next Step.
	StateTensors() map[string][]float32
	// LoadState replaces the state with a copy of st, as returned by
	// StateTensors of an optimizer of the same kind over parameters with the
	// same names and sizes. An empty st resets the optimizer to its initial
	// state. A missing, unexpected or wrongly sized entry is an error and
	// leaves the state unchanged.
	LoadState(st map[string][]float32) error
}

// base is what every optimizer shares: the parameters, their state buffers
// (one slot per kind of state, one buffer per parameter) and the workers
// that update parameters in parallel.
type base struct {
	kind   string // "LARS", "SGD", ... for error messages
	params []nn.Param
	slots  []string      // state names: "momentum", "exp_avg", ...
	state  [][][]float32 // [slot][param]; nil before the first Step
	steps  []int         // per-parameter step counts, when the kind uses them

	pool *workerPool
}

func newBase(kind string, params []nn.Param, slots ...string) (base, error) {
	if len(params) == 0 {
		return base{}, fmt.Errorf("optim: %s: no parameters", kind)
	}
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		switch {
		case p.Name == "":
			return base{}, fmt.Errorf("optim: %s: parameter %d has no name", kind, i)
		case p.T == nil:
			return base{}, fmt.Errorf("optim: %s: parameter %q has no tensor", kind, p.Name)
		case seen[p.Name]:
			return base{}, fmt.Errorf("optim: %s: parameter name %q appears twice", kind, p.Name)
		}
		seen[p.Name] = true
	}
	return base{kind: kind, params: slices.Clone(params), slots: slots}, nil
}

// ZeroGrad zeroes every parameter's gradient.
func (b *base) ZeroGrad() {
	for _, p := range b.params {
		p.T.ZeroGrad()
	}
}

// ensureState allocates zeroed state on the first Step.
func (b *base) ensureState() {
	if b.state != nil {
		return
	}
	b.state = make([][][]float32, len(b.slots))
	for s := range b.slots {
		b.state[s] = make([][]float32, len(b.params))
		for i, p := range b.params {
			b.state[s][i] = make([]float32, p.T.Len())
		}
	}
	if b.steps != nil {
		clear(b.steps)
	}
}

// stepKey names a parameter's step count in the state map.
const stepKey = "step"

func (b *base) StateTensors() map[string][]float32 {
	if b.state == nil {
		return map[string][]float32{}
	}
	st := make(map[string][]float32, len(b.slots)*len(b.params))
	for s, slot := range b.slots {
		for i, p := range b.params {
			st[slot+"/"+p.Name] = b.state[s][i]
		}
	}
	if b.steps != nil {
		for i, p := range b.params {
			// float32 holds integers exactly up to 2^24 (16.7M) steps.
			st[stepKey+"/"+p.Name] = []float32{float32(b.steps[i])}
		}
	}
	return st
}

func (b *base) LoadState(st map[string][]float32) error {
	if len(st) == 0 {
		b.state = nil
		return nil
	}
	want := make(map[string]bool, len(st))
	for _, slot := range b.slots {
		for _, p := range b.params {
			key := slot + "/" + p.Name
			want[key] = true
			v, ok := st[key]
			if !ok {
				return fmt.Errorf("optim: %s: state has no entry %q", b.kind, key)
			}
			if len(v) != p.T.Len() {
				return fmt.Errorf("optim: %s: state entry %q has %d values, parameter %v has %d",
					b.kind, key, len(v), p.T.Shape(), p.T.Len())
			}
		}
	}
	var steps []int
	if b.steps != nil {
		steps = make([]int, len(b.params))
		for i, p := range b.params {
			key := stepKey + "/" + p.Name
			want[key] = true
			v, ok := st[key]
			if !ok {
				return fmt.Errorf("optim: %s: state has no entry %q", b.kind, key)
			}
			if len(v) != 1 || v[0] < 0 || v[0] != float32(int(v[0])) || v[0] > 1<<24 {
				return fmt.Errorf("optim: %s: state entry %q is %v, want one non-negative integer", b.kind, key, v)
			}
			steps[i] = int(v[0])
		}
	}
	var extra []string
	for k := range st {
		if !want[k] {
			extra = append(extra, fmt.Sprintf("%q", k))
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		if len(extra) > 3 {
			extra = append(extra[:3], fmt.Sprintf("and %d more", len(extra)-3))
		}
		return fmt.Errorf("optim: %s: state has unexpected entries %s (another optimizer or model?)",
			b.kind, strings.Join(extra, ", "))
	}
	b.ensureState()
	for s, slot := range b.slots {
		for i, p := range b.params {
			copy(b.state[s][i], st[slot+"/"+p.Name])
		}
	}
	if steps != nil {
		copy(b.steps, steps)
	}
	return nil
}

// workerPool runs a per-parameter update on a few goroutines. The split of
// parameters (balanced by size) and the goroutine bodies are made once, so
// a Step allocates nothing.
type workerPool struct {
	groups [][]int
	fns    []func()
	wg     sync.WaitGroup
}

// minParallel is the parameter count below which a Step stays on one
// goroutine.
const minParallel = 1 << 16

func newWorkerPool(params []nn.Param, update func(i int)) *workerPool {
	w := &workerPool{}
	total := 0
	for _, p := range params {
		total += p.T.Len()
	}
	nw := min(runtime.GOMAXPROCS(0), 4, len(params))
	if total < minParallel {
		nw = 1
	}
	// Largest first, each to the least loaded worker.
	order := make([]int, len(params))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return params[order[a]].T.Len() > params[order[b]].T.Len() })
	w.groups = make([][]int, nw)
	load := make([]int, nw)
	for _, i := range order {
		k := 0
		for j := range load {
			if load[j] < load[k] {
				k = j
			}
		}
		w.groups[k] = append(w.groups[k], i)
		load[k] += params[i].T.Len()
	}
	w.fns = make([]func(), nw)
	for k := range nw {
		g := w.groups[k]
		w.fns[k] = func() {
			for _, i := range g {
				update(i)
			}
			if k > 0 {
				w.wg.Done()
			}
		}
	}
	return w
}

// run calls update(i) for every parameter and waits.
func (w *workerPool) run() {
	w.wg.Add(len(w.fns) - 1)
	for _, fn := range w.fns[1:] {
		go fn()
	}
	w.fns[0]()
	w.wg.Wait()
}
