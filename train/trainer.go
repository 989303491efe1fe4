package train

import (
	"context"
	"errors"
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
var ErrNonFinite = errors.New("non-finite loss")

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

	knn  *knnMonitor
	dist *distributed

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
	if t.method, err = method.New(cfg.Method, t.model, method.Config{Temperature: cfg.Temperature}); err != nil {
		return Summary{}, err
	}
	if t.opt, err = newOptimizer(cfg, t.method.Params()); err != nil {
		return Summary{}, err
	}
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
	t.prog.println("simclr: %s x%g (%s stem, head %s %d-%d-%d), %d params; %s: %d images, %d steps/epoch x %d epochs, batch %d; %s, lr %.4g peak, tau %g; backend %s",
		cfg.Arch, cfg.Width, cfg.Stem, cfg.Head, t.model.Encoder.OutDim(), cfg.HeadHidden, cfg.HeadOut, nn.NumParams(t.model),
		cfg.Data, ds.Len(), t.spe, cfg.Epochs, cfg.Batch, cfg.Optimizer, t.sched.Peak(), cfg.Temperature, backend.Name())

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

func (t *trainer) loop(ctx context.Context, start time.Time) (Summary, error) {
	t.invStart = start
	cfg := t.cfg
	n := cfg.Batch
	total := cfg.Epochs * t.spe
	sum := Summary{Epochs: cfg.Epochs}

	if t.epoch >= cfg.Epochs {
		t.prog.println("run %s is already complete: %d epochs, %d steps", t.dir, cfg.Epochs, t.step)
	}
	// kNN at random initialisation (epoch 0), once per run.
	if t.step == 0 && t.knn != nil {
		top1, top5, secs, err := t.knn.measure(t.tp, t.model.Encoder)
		if err != nil {
			return sum, err
		}
		t.lastKNN = f64(top1)
		t.prog.println("kNN at init: top-1 %.2f%%  top-5 %.2f%%  (%.1fs)", 100*top1, 100*top5, secs)
		if err := t.metrics.write(Record{Type: "epoch", Epoch: 0, Step: 0, KNNTop1: f64(top1), KNNTop5: f64(top5), KNNS: f64(secs), WallS: f64(t.wall())}); err != nil {
			return sum, err
		}
		if ctx.Err() != nil {
			return t.finish(sum), fmt.Errorf("interrupted before the first step (%w)", context.Cause(ctx))
		}
	}
	if t.step == 0 {
		t.dist.wait() // for rank 0's kNN at init
	}

	var (
		trainSecs  float64 // time in training steps, this invocation
		trainSteps int
		lastKNNS   float64
		skipped    int
	)
	for t.epoch < cfg.Epochs {
		epochStart := time.Now()
		logT := time.Now()
		logWait := t.loader.Stats().WaitTime
		logSteps := 0
		logComm := t.dist.comm.Total
		tStep := time.Now()
		for b, err := range t.loader.EpochFrom(t.epoch, t.batch) {
			if err != nil {
				return t.finish(sum), fmt.Errorf("training data: %w", err)
			}
			t.tp.Reset()
			l, st, err := t.method.Loss(t.tp, b)
			if err != nil {
				return t.finish(sum), fmt.Errorf("training data %s: %w", cfg.Data, err)
			}
			if math.IsNaN(st.Loss) || math.IsInf(st.Loss, 0) {
				return t.finish(sum), fmt.Errorf("%w: the loss is %v at step %d (epoch %d); stopping. The last good checkpoint is %s. Try a lower --lr, a higher --temperature or more warm-up",
					ErrNonFinite, st.Loss, t.step+1, t.epoch+1, orNone(t.lastGoodCheckpoint()))
			}
			t.opt.ZeroGrad()
			t.tp.Backward(l)
			if err := t.dist.afterBackward(t.step + 1); err != nil {
				return t.finish(sum), err
			}
			lr := t.sched.LR(t.step)
			t.opt.Step(float32(lr))
			t.step++
			t.stepsRun++
			if err := t.dist.afterStep(t.step); err != nil {
				return t.finish(sum), err
			}
			if as, ok := t.method.(method.AfterStepper); ok {
				if err := as.AfterStep(t.step); err != nil {
					return t.finish(sum), err
				}
			}
			t.batch++
			t.lastLoss = st.Loss
			t.epochLossSum += st.Loss
			t.epochLossN++
			logSteps++
			now := time.Now()
			trainSecs += now.Sub(tStep).Seconds()
			trainSteps++

			if t.opts.AfterStep != nil {
				if err := t.opts.AfterStep(t.step, st.Loss); err != nil {
					return t.finish(sum), err
				}
			}

			logged := t.step%cfg.LogEvery == 0 || t.batch == t.spe
			elapsed := now.Sub(logT).Seconds()
			wait := (t.loader.Stats().WaitTime - logWait).Seconds()
			stepS := trainSecs / float64(trainSteps)
			knnLeft := 0
			if t.knn != nil {
				knnLeft = countKNN(cfg, t.epoch, cfg.Epochs)
			}
			s := status{
				Epoch: t.epoch + 1, Epochs: cfg.Epochs, Step: t.step, TotalSteps: total,
				Loss: st.Loss, Acc: st.Accuracy, LR: lr,
				ImgS:      float64(logSteps*n) / math.Max(elapsed, 1e-9),
				WaitShare: wait / math.Max(elapsed, 1e-9),
				ETA:       time.Duration((float64(total-t.step)*stepS + float64(knnLeft)*lastKNNS) * float64(time.Second)),
			}
			t.prog.update(s, logged)
			if logged {
				rec := Record{Type: "step", Step: t.step, Epoch: t.epoch + 1, Loss: f64(st.Loss),
					ContrastiveAcc: f64(st.Accuracy), LR: f64(lr), ImgS: f64(s.ImgS), DataWait: f64(s.WaitShare)}
				if t.dist.size() > 1 {
					rec.WorldSize = t.dist.size()
					rec.CommS = f64((t.dist.comm.Total - logComm).Seconds() / float64(logSteps))
				}
				if err := t.metrics.write(rec); err != nil {
					return t.finish(sum), err
				}
				logT, logWait, logSteps, logComm = time.Now(), t.loader.Stats().WaitTime, 0, t.dist.comm.Total
			}

			if t.batch == t.spe {
				break // the epoch end is handled below
			}
			if cfg.CheckpointEvery > 0 && t.step%cfg.CheckpointEvery == 0 {
				if err := t.checkpoint(); err != nil {
					return t.finish(sum), err
				}
				t.dist.wait()
			}
			if ctx.Err() != nil {
				return t.interrupted(ctx, sum)
			}
			tStep = time.Now()
		}
		if t.batch != t.spe {
			return t.finish(sum), fmt.Errorf("training data: epoch %d ended after %d of %d batches", t.epoch+1, t.batch, t.spe)
		}

		// Epoch end: kNN monitor, epoch record, checkpoint, plots.
		ep := t.epoch + 1 // 1-based number of the epoch just finished
		epochS := time.Since(epochStart).Seconds()
		meanLoss := t.epochLossSum / float64(max(t.epochLossN, 1))
		rec := Record{Type: "epoch", Epoch: ep, Step: t.step, EpochS: f64(epochS), Loss: f64(meanLoss)}
		if t.knn != nil && knnDue(cfg, ep) {
			top1, top5, secs, err := t.knn.measure(t.tp, t.model.Encoder)
			if err != nil {
				return t.finish(sum), err
			}
			lastKNNS = secs
			t.lastKNN = f64(top1)
			rec.KNNTop1, rec.KNNTop5, rec.KNNS = f64(top1), f64(top5), f64(secs)
			t.prog.println("epoch %d/%d: loss %.4f  kNN top-1 %.2f%%  top-5 %.2f%%  (train %.1fs, kNN %.1fs)",
				ep, cfg.Epochs, meanLoss, 100*top1, 100*top5, epochS, secs)
		} else {
			t.prog.println("epoch %d/%d: loss %.4f  (%.1fs)", ep, cfg.Epochs, meanLoss, epochS)
		}
		if st := t.loader.Stats(); st.Skipped > skipped && len(st.SkippedFiles) > 0 {
			t.prog.println("skipped %d unreadable images so far (skip_bad); first: %s", st.Skipped, st.SkippedFiles[0])
			skipped = st.Skipped
		}
		t.epoch, t.batch = ep, 0
		t.epochLossSum, t.epochLossN = 0, 0
		rec.WallS = f64(t.wall())
		if err := t.metrics.write(rec); err != nil {
			return t.finish(sum), err
		}
		if err := t.checkpoint(); err != nil {
			return t.finish(sum), err
		}
		if t.dist.root() {
			t.plot()
		}
		t.dist.wait() // for rank 0's kNN, checkpoint and plots
		if ctx.Err() != nil && t.epoch < cfg.Epochs {
			return t.interrupted(ctx, sum)
		}
	}
	sum = t.finish(sum)
	if trainSecs > 0 {
		sum.ImagesPerS = float64(trainSteps*n) / trainSecs
	}
	return sum, nil
}

// plot redraws the run's plots. They are a view of metrics.jsonl, which
// holds the data: a failure to draw them is a warning, never the end of the
// run or a replacement for the run's own error.
func (t *trainer) plot() {
	if err := Plot(t.dir); err != nil {
		t.prog.println("warning: plots not updated: %v (the data is in metrics.jsonl; redraw with 'simclr plot --run %s')", err, t.dir)
	}
}

// countKNN is how many kNN measurements remain after epoch e (0-based, in progress).
func countKNN(cfg Config, e, epochs int) int {
	k := 0
	for ep := e + 1; ep <= epochs; ep++ {
		if knnDue(cfg, ep) {
			k++
		}
	}
	return k
}

// knnDue says whether the monitor runs after (1-based) epoch ep: every
// knn_every epochs and after the last one.
func knnDue(cfg Config, ep int) bool {
	return cfg.KNNEvery > 0 && (ep%cfg.KNNEvery == 0 || ep == cfg.Epochs)
}

// interrupted saves a checkpoint at the current position and reports how
// to resume.
func (t *trainer) interrupted(ctx context.Context, sum Summary) (Summary, error) {
	if t.step > t.lastCkptStep {
		if err := t.checkpoint(); err != nil {
			return t.finish(sum), err
		}
	}
	return t.finish(sum), fmt.Errorf("interrupted at step %d (%w); checkpoint %s; continue with --resume", t.step, context.Cause(ctx), orNone(t.lastCkpt))
}

func (t *trainer) finish(sum Summary) Summary {
	sum.Steps = t.step
	sum.FinalLoss = t.lastLoss
	sum.KNNTop1 = t.lastKNN
	sum.WallS = t.wall()
	sum.Checkpoint = t.lastCkpt
	if recs, err := ReadMetrics(filepath.Join(t.dir, "metrics.jsonl")); err == nil {
		for _, r := range recs {
			if r.Type == "epoch" && r.Epoch == 0 && r.KNNTop1 != nil {
				sum.KNNTop1Init = r.KNNTop1
			}
		}
	}
	return sum
}
