package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/dist"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/backends"
	"github.com/simclr-go/simclr/method"
	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/optim"
	"github.com/simclr-go/simclr/stfile"
)

// Options are the parts of a run that are not hyperparameters.
type Options struct {
	// Backend runs the kernels; nil means backends.New with cfg.Threads
	// and cfg.Deterministic.
	Backend engine.Backend
	// AfterStep, when set, is called after every optimizer step with the
	// number of steps taken and that step's loss. A non-nil error aborts
	// the run at once, without writing a checkpoint, as a crash would
	// (tests use it to kill a run).
	AfterStep func(step int, loss float64) error
	// Comm spreads the global batch over the processes of an MPI job
	// (package dist); nil means one process.
	Comm dist.Comm
	// DumpGrads, when set, is a file that rank 0 fills with the gradients
	// of step 1 after they are summed over the processes (float32 little
	// endian, parameters in model order): a debug aid for the
	// distributed-equivalence test.
	DumpGrads string
}

// Summary is the result of a run, printed by `simclr pretrain` as one JSON
// line on stdout.
type Summary struct {
	Steps       int      `json:"steps"`
	Epochs      int      `json:"epochs"`
	FinalLoss   float64  `json:"final_loss"`
	KNNTop1     *float64 `json:"knn_top1,omitempty"`
	KNNTop1Init *float64 `json:"knn_top1_init,omitempty"`
	WallS       float64  `json:"wall_s"`
	// ImagesPerS is source images (each giving 2 views) per second of
	// training steps in this invocation, kNN monitor excluded.
	ImagesPerS float64 `json:"images_per_s"`
	Backend    string  `json:"backend"`
	// WorldSize is the number of processes (mpirun -np); CommSPerStep the
	// mean time per step spent in their collectives.
	WorldSize    int     `json:"world_size"`
	CommSPerStep float64 `json:"comm_s_per_step,omitempty"`
	RunDir       string  `json:"run_dir"`
	Checkpoint   string  `json:"checkpoint,omitempty"`
}

// ErrNonFinite is wrapped by the error of a run stopped by a NaN or
// infinite loss (or weights).
var ErrNonFinite = optim.ErrNonFinite

// trainer holds the state of one Pretrain call.
type trainer struct {
	cfg    Config
	opts   Options
	prog   *progress
	dir    string
	ckdir  string
	cfgY   []byte
	model  *nn.Model
	method method.Method
	opt    optim.Optimizer
	sched  optim.Schedule
	tp     *engine.Tape
	loader *data.PairLoader
	spe    int // steps per epoch

	stepper *optim.Step
	knn     *knnMonitor
	dist    *distributed

	tuning *runTuning // the backend's kernel choices, saved before each checkpoint

	step, epoch, batch int // position: next batch is (epoch, batch)
	epochLossSum       float64
	epochLossN         int
	invStart           time.Time
	wallPrev           float64
	lastLoss           float64
	lastKNN            *float64
	lastCkpt           string
	lastCkptStep       int
	stepsRun           int // steps taken by this invocation
	metrics            *metricsLog

	// This invocation's training time and steps (kNN monitor excluded) and
	// the last kNN measurement's time, for throughput and ETA.
	trainSecs  float64
	trainSteps int
	lastKNNS   float64
}

// Pretrain runs (or resumes, with cfg.Resume) SimCLR pretraining as
// described by cfg, writing the run directory cfg.Out. Progress goes to
// progress (a terminal gets a single updating line). Cancelling ctx stops
// the run after the current step with a checkpoint, so that it can be
// resumed.
func Pretrain(ctx context.Context, cfg Config, progress io.Writer, opts Options) (Summary, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	if cfg.Data == "" {
		cfg.Data = data.DefaultSpec
	}
	acfg, err := cfg.Resolve()
	if err != nil {
		return Summary{}, fmt.Errorf("augmentation: %w", err)
	}
	d := newDistributed(opts.Comm)
	d.dumpGrads = opts.DumpGrads
	if err := d.checkBatch(cfg.Batch); err != nil {
		return Summary{}, err
	}
	cfg.WorldSize = d.size()
	if !d.root() {
		progress = io.Discard // rank 0 shows progress for the job
	}
	t := &trainer{cfg: cfg, opts: opts, prog: newProgress(progress), dir: cfg.Out, ckdir: filepath.Join(cfg.Out, "checkpoints"), dist: d}

	// One writer per run directory, rank 0 (the other ranks never write
	// it): the lock is taken before anything in it is read or written, and
	// held until Pretrain returns.
	if d.root() {
		lock, err := lockNewOrExistingRun(cfg.Out)
		if err != nil {
			return Summary{}, err
		}
		defer lock.Release()
		if lock.Warning != "" {
			t.prog.println("%s", lock.Warning)
		}
	}

	// Resume: the checkpoint must come from the same trajectory. Rank 0
	// finds and verifies it (the run directory may exist on its host
	// only); with several ranks every rank restores from the same bytes,
	// received from rank 0 and verified again.
	var ck *checkpointFile
	var abandoned []string // checkpoints after --resume-from's step
	if cfg.Resume || cfg.ResumeFrom != "" {
		var path string
		var b []byte
		if d.root() {
			if _, err := LatestCheckpoint(cfg.Out); err != nil {
				return Summary{}, fmt.Errorf("nothing to resume: %w; start the run without --resume", err)
			}
			if ck, abandoned, err = resumeCheckpoint(cfg.Out, cfg.ResumeFrom); err != nil {
				return Summary{}, fmt.Errorf("cannot resume: %w", err)
			}
			if !ck.Verified {
				t.prog.println("%s", stfile.UnverifiedWarning(ck.Path))
			}
			path = ck.Path
			if d.size() > 1 {
				if b, err = os.ReadFile(path); err != nil {
					return Summary{}, fmt.Errorf("checkpoint: %w", err)
				}
			}
		}
		if d.size() > 1 {
			path = string(dist.BcastVar(d.comm, []byte(path)))
			if ck, err = parseCheckpoint(path, dist.BcastVar(d.comm, b)); err != nil {
				return Summary{}, err
			}
		}
	} else if paths, _, _ := listCheckpoints(t.ckdir); d.root() && len(paths) > 0 {
		return Summary{}, fmt.Errorf("run directory %s already has checkpoints; continue it with --resume or choose another --out", cfg.Out)
	}

	ds, err := data.Open(cfg.Data)
	if err != nil {
		return Summary{}, err
	}
	mspec, err := method.Lookup(cfg.Method)
	if err != nil {
		return Summary{}, err
	}
	if err := mspec.CheckData(ds, cfg.Data); err != nil {
		return Summary{}, err
	}
	tf, err := augment.New(acfg)
	if err != nil {
		return Summary{}, err
	}
	t.loader, err = data.NewPairLoader(ds, tf, data.LoaderConfig{
		Batch: cfg.Batch, Workers: cfg.Workers, Seed: uint64(cfg.Seed),
		SkipBad: cfg.SkipBad, Shuffle: true, DropLast: true,
		Rank: d.comm.Rank(), Ranks: d.size(),
	})
	if err != nil {
		return Summary{}, fmt.Errorf("training data %s: %w", cfg.Data, err)
	}
	t.spe = t.loader.NumBatches()

	if t.model, err = NewModel(cfg); err != nil {
		return Summary{}, err
	}
	cfg.HeadHidden = t.model.Head.Config().Hidden
	cfg.HeadOut = t.model.Head.Config().Out
	t.cfg = cfg
	if err := d.checkConfig(cfg, ds.Len()); err != nil {
		return Summary{}, err
	}
	if ck != nil {
		var prev Config = DefaultConfig()
		if err := prev.decodeYAML(ck.Path+" (embedded config)", ck.Config); err != nil {
			return Summary{}, err
		}
		// An old checkpoint's config leaves some augment keys to its preset.
		if _, err := prev.Resolve(); err != nil {
			return Summary{}, fmt.Errorf("%s (embedded config): %w", ck.Path, err)
		}
		if prev.Hash() != cfg.Hash() {
			return Summary{}, fmt.Errorf("cannot resume %s: the configuration differs from the checkpoint's in %s; resume with the run's config.yaml",
				ck.Path, strings.Join(diffKeys(prev, cfg), ", "))
		}
		if ck.Meta.StepsPerEpoch != t.spe {
			return Summary{}, fmt.Errorf("cannot resume %s: %d steps per epoch now, %d in the checkpoint (has the dataset changed?)", ck.Path, t.spe, ck.Meta.StepsPerEpoch)
		}
	}

	backend := opts.Backend
	if backend == nil {
		if backend, err = backends.New(backends.Options{Threads: CapThreads(cfg.Threads, cfg.ThreadsForce, progress), Deterministic: cfg.Deterministic}); err != nil {
			return Summary{}, err
		}
	}
	t.tp = engine.NewTape(backend)
	if cfg.BN == "global" {
		t.tp.SetBNSync(d.comm) // a no-op with one process
	}
	if t.method, err = method.New(cfg.Method, t.model, method.Config{Temperature: cfg.Temperature,
		Gather: d.gather, GatherLabels: d.gatherLabels}); err != nil {
		return Summary{}, err
	}
	if t.opt, err = newOptimizer(cfg, t.method.Params()); err != nil {
		return Summary{}, err
	}
	t.stepper = &optim.Step{Tape: t.tp, Opt: t.opt,
		AfterBackward: func() error { return t.dist.afterBackward(t.step + 1) }}
	warm := int(math.Round(cfg.WarmupEpochs * float64(t.spe)))
	t.sched = optim.Schedule{Base: cfg.LR, Scaling: cfg.LRScaling, Batch: cfg.Batch, WarmupSteps: warm, TotalSteps: cfg.Epochs * t.spe}
	if err := t.sched.Validate(); err != nil {
		return Summary{}, err
	}

	saved := cfg
	saved.Resume, saved.ResumeFrom = false, "" // the file describes the run, not how it was started
	if t.cfgY, err = saved.yamlBytes(); err != nil {
		return Summary{}, err
	}
	if ck != nil {
		if err := t.restore(ck); err != nil {
			return Summary{}, err
		}
	}
	d.start(t.model, cfg.SyncCheckEvery)
	if d.root() { // only rank 0 writes the run directory
		if err := t.openRunDir(saved, ck, abandoned); err != nil {
			return Summary{}, err
		}
		defer t.metrics.Close()
		// The kernel choices saved with the run are rank 0's; the other
		// ranks choose for their own share of the batch.
		if t.tuning, err = openTuning(cfg.Out, backend, t.prog); err != nil {
			return Summary{}, err
		}
		if ck != nil {
			t.prog.println("resuming %s from step %d (epoch %d, batch %d of %d)", ck.Path, t.step, t.epoch+1, t.batch, t.spe)
		}
		if t.knn, err = newKNNMonitor(cfg, ds, tf, t.prog); err != nil {
			return Summary{}, err
		}
	}
	t.prog.println("simclr: %s x%g (%s stem, head %s %d-%d-%d), %d params; %s: %d images, %d steps/epoch x %d epochs, batch %d; method %s, %s, lr %.4g peak, tau %g; backend %s",
		cfg.Arch, cfg.Width, cfg.Stem, cfg.Head, t.model.Encoder.OutDim(), cfg.HeadHidden, cfg.HeadOut, nn.NumParams(t.model),
		cfg.Data, ds.Len(), t.spe, cfg.Epochs, cfg.Batch, cfg.Method, cfg.Optimizer, t.sched.Peak(), cfg.Temperature, backend.Name())

	if d.size() > 1 {
		t.prog.println("data parallel: %d processes x %d images of each batch of %d; batch norm %s", d.size(), cfg.Batch/d.size(), cfg.Batch, cfg.BN)
	}

	sum, err := t.loop(ctx, start)
	t.prog.done()
	sum.Backend, sum.RunDir, sum.WorldSize = backend.Name(), cfg.Out, d.size()
	if sum.Steps > 0 && d.comm.Calls > 0 {
		sum.CommSPerStep = d.comm.Total.Seconds() / float64(max(t.stepsRun, 1))
	}
	if d.root() {
		t.plot()
	}
	return sum, err
}

// openRunDir creates the run directory's files (rank 0's job): the
// checkpoint folder, config.yaml and metrics.jsonl (truncated to the
// checkpoint's position when resuming).
func (t *trainer) openRunDir(saved Config, ck *checkpointFile, abandoned []string) error {
	if err := os.MkdirAll(t.ckdir, 0o755); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	removeStaleTemps(t.ckdir)
	if moved, err := setAsideCheckpoints(t.ckdir, abandoned); err != nil {
		return fmt.Errorf("--resume-from: set aside the later checkpoints: %w", err)
	} else if moved != "" {
		t.prog.println("--resume-from %s: the %d later checkpoints were moved to %s", ck.Path, len(abandoned), moved)
	}
	if err := saved.Save(filepath.Join(t.dir, "config.yaml")); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	metricsPath := filepath.Join(t.dir, "metrics.jsonl")
	if ck != nil {
		if err := truncateMetrics(metricsPath, t.step, t.epoch); err != nil {
			return err
		}
	} else if err := os.WriteFile(metricsPath, nil, 0o644); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	var err error
	t.metrics, err = openMetrics(metricsPath)
	return err
}

// newOptimizer builds cfg's optimizer over the method's parameters, named
// as in the checkpoint (encoder.*, head.*).
func newOptimizer(cfg Config, ps []nn.Param) (optim.Optimizer, error) {
	return optim.New(cfg.Optimizer, ps, optim.Settings{Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay, Nesterov: cfg.Nesterov})
}

// restore loads model, optimizer and position from a checkpoint.
func (t *trainer) restore(ck *checkpointFile) error {
	if err := loadModel(t.model, ck, t.cfg.Arch); err != nil {
		return err
	}
	st := map[string][]float32{}
	for _, n := range ck.Names {
		if strings.HasPrefix(n, optimPrefix) {
			e := ck.Tensors[n]
			if e.F32 == nil {
				return fmt.Errorf("checkpoint %s: optimizer tensor %s is not float32", ck.Path, n)
			}
			st[strings.TrimPrefix(n, optimPrefix)] = e.F32
		}
	}
	if err := t.opt.LoadState(st); err != nil {
		return fmt.Errorf("checkpoint %s: %w", ck.Path, err)
	}
	m := ck.Meta
	if m.Step != m.Epoch*t.spe+m.Batch || m.Batch < 0 || m.Batch >= t.spe {
		return fmt.Errorf("checkpoint %s: inconsistent position: step %d, epoch %d, batch %d, %d steps per epoch", ck.Path, m.Step, m.Epoch, m.Batch, t.spe)
	}
	t.step, t.epoch, t.batch = m.Step, m.Epoch, m.Batch
	t.wallPrev, t.lastLoss = m.WallS, m.Loss
	t.epochLossSum, t.epochLossN = m.EpochLossSum, m.EpochLossN
	if m.KNNTop1 >= 0 {
		t.lastKNN = f64(m.KNNTop1)
	}
	t.lastCkpt, t.lastCkptStep = ck.Path, m.Step
	return nil
}

// checkpoint writes the current state, after checking that the weights are
// finite (a checkpoint must never hold a diverged model).
func (t *trainer) checkpoint() error {
	if !t.dist.root() {
		return nil
	}
	for _, p := range t.model.Params() {
		for _, v := range p.T.Data() {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%w: parameter %s became %v at step %d; not checkpointed; the last good checkpoint is %s",
					ErrNonFinite, p.Name, v, t.step, orNone(t.lastGoodCheckpoint()))
			}
		}
	}
	// The kernel choices come first: a resumed run needs those made
	// before its checkpoint.
	if err := t.tuning.save(); err != nil {
		return err
	}
	ts := modelTensors(t.model)
	for name, v := range t.opt.StateTensors() {
		ts = append(ts, tensorEntry{Name: optimPrefix + name, Shape: []int{len(v)}, F32: v})
	}
	knn := -1.0
	if t.lastKNN != nil {
		knn = *t.lastKNN
	}
	meta := Meta{
		Step: t.step, Epoch: t.epoch, Batch: t.batch, StepsPerEpoch: t.spe,
		ConfigHash: t.cfg.Hash(), Loss: t.lastLoss, KNNTop1: knn, WallS: t.wall(),
		EpochLossSum: t.epochLossSum, EpochLossN: t.epochLossN,
	}
	path, err := writeCheckpoint(t.ckdir, ts, meta, t.cfgY)
	if err != nil {
		return err
	}
	t.lastCkpt, t.lastCkptStep = path, t.step
	return pruneCheckpoints(t.ckdir, t.cfg.KeepCheckpoints)
}

func orNone(s string) string {
	if s == "" {
		return "none (no checkpoint was written yet)"
	}
	return s
}

// invStart is when this invocation started; wall() adds earlier invocations.
func (t *trainer) wall() float64 { return t.wallPrev + time.Since(t.invStart).Seconds() }
