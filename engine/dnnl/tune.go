//go:build cgo && !purego

package dnnl

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/simclr-go/simclr/engine"
)

// Kernel choices. Two kinds of call have more than one way to run here:
// 3x3 stride-1 convolutions (oneDNN's direct kernel, oneDNN's Winograd on
// AVX-512, the engine's Winograd in wino.h on AVX2) and batch norms (one
// thread or the whole pool, see the g_nthr comment in shim.h). Each way
// rounds differently, so a choice, once made, must never change within a
// run, and a run that is resumed must make the same one: a backend makes
// each choice once, on the first call of its shape, and keeps it; the
// choices it timed are its engine.Tuning, which a resumed run gives back
// with SetTuning. A backend that times starts from the choices the
// process's earlier timing backends made (dispatcher.shared), so that
// within one process a shape always runs the same way.
//
// Precedence, for each call: SIMCLR_CONV_ALGO=direct|winograd and
// SIMCLR_DNNL_SERIAL_MEMOPS=0|1 (experiments); a choice given by
// SetTuning; the fixed rule of Options.Deterministic; the process's
// earlier choice; timing.

// Convolution algorithms (bits 1-2 of a plan key's flags).
const (
	convDirect   uint8 = 1 + iota // oneDNN's direct kernel
	convWinograd                  // oneDNN's Winograd (AVX-512 CPUs)
	convOwnWino                   // the engine's F(2x2,3x3), wino.h (AVX2 CPUs)
)

// Batch-norm thread modes (bits 2-3 of a plan key's flags).
const (
	bnPool   uint8 = 0 // the whole OpenMP pool
	bnSerial uint8 = 1 // one thread
)

// Names of the choices in an engine.Tuning.
var (
	convAlgoNames = map[uint8]string{convDirect: "direct", convWinograd: "winograd", convOwnWino: "wino_f2x3"}
	bnModeNames   = map[uint8]string{bnPool: "pool", bnSerial: "serial"}
)

func nameToCode(names map[uint8]string, v string) (uint8, bool) {
	for c, n := range names {
		if n == v {
			return c, true
		}
	}
	return 0, false
}

// tuning is one backend's choices. It is touched only on the oneDNN thread.
type tuning struct {
	conv map[pkey]uint8 // choice key -> algorithm, every convolution seen
	bn   map[pkey]uint8 // choice key -> thread mode, every batch norm seen
	// timed holds the choices made by timing, plus those given by
	// SetTuning (which may describe calls not seen yet), by description.
	timed map[string]string
}

func newTuning() *tuning {
	return &tuning{conv: map[pkey]uint8{}, bn: map[pkey]uint8{}, timed: map[string]string{}}
}

func (t *tuning) clone() *tuning {
	c := newTuning()
	maps.Copy(c.conv, t.conv)
	maps.Copy(c.bn, t.bn)
	maps.Copy(c.timed, t.timed)
	return c
}

// record notes the choice for choice key k in the exported tuning: under
// its description if it was timed (or given), and not at all otherwise (a
// given choice that could not run here is dropped).
func (t *tuning) record(k pkey, name string, timed bool) {
	if timed {
		t.timed[k.describe()] = name
	} else if len(t.timed) > 0 {
		delete(t.timed, k.describe())
	}
}

// given returns the choice SetTuning gave for the call of choice key k.
func (t *tuning) given(k pkey, names map[uint8]string) (uint8, bool) {
	v, ok := t.timed[k.describe()]
	if !ok {
		return 0, false
	}
	return nameToCode(names, v)
}

// Tuning returns the choices this backend made by timing, and those given
// by SetTuning (engine.Tuner).
func (b *backend) Tuning() engine.Tuning {
	t := engine.Tuning{Backend: b.Name(), Choices: map[string]string{}}
	b.d.do(func() {
		for k, v := range b.tune.timed {
			t.Choices[k] = v
		}
		t.Machine = machine(b.d)
	})
	return t
}

// SetTuning makes the backend use t's choices for the calls they describe
// (engine.Tuner), also over those it took over from the process. A choice
// that cannot run here (oneDNN's Winograd on a CPU without it, say) is
// made again when its call comes. Call it before the backend's first
// kernels: a choice it replaces then never ran.
func (b *backend) SetTuning(t engine.Tuning) error {
	if t.Backend != b.Name() {
		return fmt.Errorf("dnnl: tuning of backend %q, not %q", t.Backend, b.Name())
	}
	for k, v := range t.Choices {
		var ok bool
		switch {
		case strings.HasPrefix(k, "conv "):
			_, ok = nameToCode(convAlgoNames, v)
		case strings.HasPrefix(k, "batchnorm "):
			_, ok = nameToCode(bnModeNames, v)
		default:
			return fmt.Errorf("dnnl: tuning: unknown kernel %q", k)
		}
		if !ok {
			return fmt.Errorf("dnnl: tuning: %q: unknown choice %q", k, v)
		}
	}
	b.d.do(func() {
		// Choices this backend took over from the process give way.
		for k, a := range b.tune.conv {
			if v, ok := t.Choices[k.describe()]; ok && v != convAlgoNames[a] {
				delete(b.tune.conv, k)
			}
		}
		for k, m := range b.tune.bn {
			if v, ok := t.Choices[k.describe()]; ok && v != bnModeNames[m] {
				delete(b.tune.bn, k)
			}
		}
		maps.Copy(b.tune.timed, t.Choices)
	})
	return nil
}

// machine describes what a tuning is valid for: library, ISA, pool size
// and CPU model.
func machine(d *dispatcher) string {
	isa := "no blocked layout"
	switch d.blk {
	case 16:
		isa = "AVX-512 (nChw16c)"
	case 8:
		isa = "AVX2 (nChw8c)"
	}
	return fmt.Sprintf("oneDNN %s, %s, %d threads, %s", Version(), isa, d.nthr, cpuModel())
}

// cpuModel is /proc/cpuinfo's model name (Linux), or "unknown CPU".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// buildConv builds the plan of algorithm a for a convolution.
func buildConv(a uint8, kind int, dm *[13]int64, xl, yl int, bias bool) (*plan, error) {
	switch a {
	case convWinograd:
		return newConvPlan(kind, true, dm, xl, yl, bias)
	case convOwnWino:
		return newWinoPlan(kind, dm, xl, yl, bias)
	}
	return newConvPlan(kind, false, dm, xl, yl, bias)
}

// convCandidates builds, lazily, the plans a convolution's choice weighs,
// taking cached ones where another backend of the process built them.
type convCandidates struct {
	d      *dispatcher
	ck     pkey
	kind   int
	dm     *[13]int64
	xl, yl int
	bias   bool
	built  map[uint8]*plan // built here: freed unless chosen
	errs   map[uint8]error
}

func (c *convCandidates) get(a uint8) (*plan, error) {
	if p := c.d.plans[c.ck.withAlgo(a)]; p != nil {
		return p, nil
	}
	if p, ok := c.built[a]; ok {
		return p, nil
	}
	if err, ok := c.errs[a]; ok {
		return nil, err
	}
	p, err := buildConv(a, c.kind, c.dm, c.xl, c.yl, c.bias)
	if err != nil {
		c.errs[a] = err
		return nil, err
	}
	c.built[a] = p
	return p, nil
}

// keep caches the chosen algorithm's plan and frees the others built.
func (c *convCandidates) keep(a uint8) {
	for b, p := range c.built {
		if b == a {
			c.d.plans[c.ck.withAlgo(a)] = p
		} else {
			p.free()
		}
	}
}

// chooseConv makes the algorithm choice for the convolution of choice key
// ck (see the precedence above); h are the call's buffers, on which
// candidates are timed (the real run that follows overwrites every
// output). It reports whether the choice was timed (or given), that is,
// whether it belongs in the backend's Tuning.
func (b *backend) chooseConv(ck pkey, kind int, dm *[13]int64, xl, yl int, bias bool, h *handles) (uint8, bool) {
	c := &convCandidates{d: b.d, ck: ck, kind: kind, dm: dm, xl: xl, yl: yl, bias: bias,
		built: map[uint8]*plan{}, errs: map[uint8]error{}}
	a, timed := b.pickConv(c, h)
	c.keep(a)
	return a, timed
}

func (b *backend) pickConv(c *convCandidates, h *handles) (uint8, bool) {
	dm := c.dm
	if b.algo == algoDirect || dm[5] != 3 || dm[6] != 3 || dm[9] != 1 || dm[10] != 1 {
		return convDirect, false // only the direct kernel applies
	}
	_, derr := c.get(convDirect)
	ok := func(a uint8) bool { _, err := c.get(a); return err == nil }
	if b.algo != algoWinograd {
		if a, given := b.tune.given(c.ck, convAlgoNames); given && ok(a) {
			return a, true
		}
	}
	if b.algo == algoWinograd || derr != nil {
		for _, a := range []uint8{convWinograd, convOwnWino} {
			if ok(a) {
				return a, false
			}
		}
		must("convolution", derr)
		return convDirect, false
	}
	if b.algo == algoFixed {
		if fixedConvWino(dm) {
			for _, a := range []uint8{convWinograd, convOwnWino} {
				if ok(a) {
					return a, false
				}
			}
		}
		return convDirect, false
	}
	if ok(convWinograd) { // oneDNN's, where it has one
		wino, _ := c.get(convWinograd)
		direct, _ := c.get(convDirect)
		if timePlan(wino, h) < timePlan(direct, h) {
			return convWinograd, true
		}
		return convDirect, true
	}
	if convFLOP(dm) < convTuneMinFLOP || !ok(convOwnWino) {
		return convDirect, false
	}
	if b.ownWinoFaster(c, h) {
		return convOwnWino, true
	}
	return convDirect, true
}

// convTuneMinFLOP is the smallest convolution (FLOPs per call) for which
// auto mode times the engine's own Winograd kernel against oneDNN's: below
// it the choice is worth less than the timing.
var convTuneMinFLOP = 2e8

// convTuneFLOP sets the batch prefix the engine's Winograd kernel is timed
// on (every layout here keeps the batch outermost): enough images for about
// this much work and for full tile chunks (winoTuneBatch), so that per-call
// costs do not decide, but not the whole batch, which for a big network
// would add a minute to the first step.
const convTuneFLOP = 1.5e9

// ownWinoFaster times the engine's Winograd kernel against the direct one
// on a prefix of the batch (convTuneFLOP).
func (b *backend) ownWinoFaster(c *convCandidates, h *handles) bool {
	dm := c.dm
	tdm := *dm
	perImage := convFLOP(dm) / float64(dm[0])
	tdm[0] = min(tdm[0], max(8, int64(convTuneFLOP/perImage), winoTuneBatch(dm)))
	if tdm[0] == dm[0] {
		own, _ := c.get(convOwnWino)
		direct, _ := c.get(convDirect)
		return clearlyFaster(own, direct, h)
	}
	// Time plans for the prefix.
	td, err1 := newConvPlan(c.kind, false, &tdm, c.xl, c.yl, c.bias)
	must("convolution", err1)
	defer td.free()
	to, err2 := newWinoPlan(c.kind, &tdm, c.xl, c.yl, c.bias)
	must("convolution", err2)
	defer to.free()
	return clearlyFaster(to, td, h)
}

// fixedConvWino is the rule that replaces timing in deterministic mode for
// a 3x3 stride-1 convolution with dims dm: Winograd (oneDNN's where it has
// one, AVX-512; else the engine's, AVX2 with 8-channel blocks) for calls
// worth at least convTuneMinFLOP with 32 or more channels on both sides,
// which is what timing chose for ResNet-18 at widths 1/4 and 1 on the
// 2-core AVX2 box; oneDNN's direct kernel for the rest.
func fixedConvWino(dm *[13]int64) bool {
	return convFLOP(dm) >= convTuneMinFLOP && min(dm[1], dm[4]) >= 32
}

// clearlyFaster times plans a and b alternately (after a warm-up run of
// each, so that a change of machine load hits both) and reports whether a's
// best time beats b's by 5%: near-ties keep oneDNN's kernel.
func clearlyFaster(a, b *plan, h *handles) bool {
	must("convolution", a.exec(h))
	must("convolution", b.exec(h))
	ta, tb := time.Duration(1<<63-1), time.Duration(1<<63-1)
	for range 3 {
		t := time.Now()
		must("convolution", a.exec(h))
		ta = min(ta, time.Since(t))
		t = time.Now()
		must("convolution", b.exec(h))
		tb = min(tb, time.Since(t))
	}
	return float64(ta) < 0.95*float64(tb)
}

// convFLOP is the multiply-add count x2 of a convolution with dims dm.
func convFLOP(dm *[13]int64) float64 {
	return 2 * float64(dm[0]*dm[4]*dm[1]*dm[5]*dm[6]*dm[7]*dm[8])
}

func timePlan(p *plan, h *handles) time.Duration {
	must("convolution", p.exec(h)) // warm-up
	best := time.Duration(1<<63 - 1)
	for range 2 {
		t := time.Now()
		must("convolution", p.exec(h))
		best = min(best, time.Since(t))
	}
	return best
}

// bnTuneRounds is how many timed runs of each thread mode decide a batch
// norm's choice (after one warm-up run of each); the best of them counts,
// which ignores one-off stalls (page faults, a preempted call).
const bnTuneRounds = 3

// chooseBN makes the thread-mode choice for the batch norm of choice key
// k (see the precedence above), timing both modes alternately on the
// call's buffers when nothing else decides (the real run that follows
// overwrites every output; prep binds the workspace before each run). It
// reports whether the choice was timed (or given).
func (b *backend) chooseBN(name string, k pkey, mk func(serial bool) (*plan, error), h *handles, prep func(*plan)) (uint8, bool) {
	d := b.d
	switch {
	case d.memops >= 0:
		return uint8(d.memops), false
	case d.nthr <= 1:
		return bnPool, false // both modes are one thread
	}
	if m, ok := b.tune.given(k, bnModeNames); ok {
		return m, true
	}
	if b.det {
		// The fixed rule: one thread. On a quiet machine the pool is
		// faster (by up to the thread count, on batch norm alone), but
		// on a busy one it can be 5-10x slower, and one thread's results
		// do not depend on --threads. SIMCLR_DNNL_SERIAL_MEMOPS=0 puts
		// it on the pool, deterministically too.
		return bnSerial, false
	}
	var pl [2]*plan
	for m := range pl {
		pl[m] = d.plan(k.withMode(uint8(m)), name, func() (*plan, error) { return mk(m == 1) })
	}
	best := [2]time.Duration{1<<63 - 1, 1<<63 - 1}
	for r := range 1 + bnTuneRounds {
		for m, p := range pl {
			prep(p)
			t := time.Now()
			must(name, p.exec(h))
			if r > 0 {
				best[m] = min(best[m], time.Since(t))
			}
		}
	}
	if best[1] < best[0] {
		return bnSerial, true
	}
	return bnPool, true
}
