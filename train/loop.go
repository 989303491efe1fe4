package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/loss"
	"github.com/simclr-go/simclr/method"
	"github.com/simclr-go/simclr/optim"
)

// The training loop is one step per batch (trainStep: optim.Step with the
// method's loss) and hooks that run on the loop's events, as GoMLX's
// ml/train loop does: the kNN monitor, progress and metrics, checkpoints,
// plots, Ctrl-C and the caller's Options.AfterStep are each a hook, in the
// order of t.hooks. A hook's error ends the run with that error.
type hook struct {
	// start runs once before the first step of this invocation.
	start func() error
	// epochStart runs before each epoch's first step.
	epochStart func() error
	// step runs after every optimizer step.
	step func(s *stepDone) error
	// epochEnd runs after each epoch's last step, once the position has
	// moved to the next epoch.
	epochEnd func(e *epochDone) error
}

// stepDone describes the step just taken; t.step, t.epoch and t.batch are
// already the position after it.
type stepDone struct {
	stats loss.Stats
	lr    float64
	at    time.Time // when the step ended
}

// epochDone describes the epoch just finished; hooks fill rec, the epoch's
// metrics record, which the metrics hook writes.
type epochDone struct {
	ep       int     // its 1-based number
	secs     float64 // its wall time, hooks excluded
	meanLoss float64
	rec      Record
}

// trainStep takes one optimizer step on batch b and moves the position.
func (t *trainer) trainStep(b *data.PairBatch) (stepDone, error) {
	lr := t.sched.LR(t.step)
	var st loss.Stats
	_, err := t.stepper.Run(float32(lr), func(tp *engine.Tape) (l *engine.Tensor, err error) {
		if l, st, err = t.method.Loss(tp, b); err != nil {
			return nil, fmt.Errorf("training data %s: %w", t.cfg.Data, err)
		}
		return l, nil
	})
	if errors.Is(err, optim.ErrNonFinite) {
		return stepDone{}, fmt.Errorf("%w: the loss is %v at step %d (epoch %d); stopping. The last good checkpoint is %s. Try a lower --lr, a higher --temperature or more warm-up",
			ErrNonFinite, st.Loss, t.step+1, t.epoch+1, orNone(t.lastGoodCheckpoint()))
	}
	if err != nil {
		return stepDone{}, err
	}
	t.step++
	t.stepsRun++
	if err := t.dist.afterStep(t.step); err != nil {
		return stepDone{}, err
	}
	t.batch++
	t.lastLoss = st.Loss
	t.epochLossSum += st.Loss
	t.epochLossN++
	return stepDone{stats: st, lr: lr}, nil
}

// loop trains from the current position to the end of the run, running the
// hooks on the way.
func (t *trainer) loop(ctx context.Context, start time.Time) (Summary, error) {
	t.invStart = start
	cfg := t.cfg
	sum := Summary{Epochs: cfg.Epochs}
	if t.epoch >= cfg.Epochs {
		t.prog.println("run %s is already complete: %d epochs, %d steps", t.dir, cfg.Epochs, t.step)
	}
	hooks := t.hooks(ctx)
	for _, h := range hooks {
		if h.start != nil {
			if err := h.start(); err != nil {
				return t.finish(sum), err
			}
		}
	}
	for t.epoch < cfg.Epochs {
		epochStart := time.Now()
		for _, h := range hooks {
			if h.epochStart != nil {
				if err := h.epochStart(); err != nil {
					return t.finish(sum), err
				}
			}
		}
		tStep := time.Now()
		for b, err := range t.loader.EpochFrom(t.epoch, t.batch) {
			if err != nil {
				return t.finish(sum), fmt.Errorf("training data: %w", err)
			}
			s, err := t.trainStep(b)
			if err != nil {
				return t.finish(sum), err
			}
			s.at = time.Now()
			t.trainSecs += s.at.Sub(tStep).Seconds()
			t.trainSteps++
			for _, h := range hooks {
				if h.step != nil {
					if err := h.step(&s); err != nil {
						return t.finish(sum), err
					}
				}
			}
			if t.batch == t.spe {
				break // the epoch end is handled below
			}
			tStep = time.Now()
		}
		if t.batch != t.spe {
			return t.finish(sum), fmt.Errorf("training data: epoch %d ended after %d of %d batches", t.epoch+1, t.batch, t.spe)
		}
		e := &epochDone{ep: t.epoch + 1, secs: time.Since(epochStart).Seconds(),
			meanLoss: t.epochLossSum / float64(max(t.epochLossN, 1))}
		e.rec = Record{Type: "epoch", Epoch: e.ep, Step: t.step, EpochS: f64(e.secs), Loss: f64(e.meanLoss)}
		t.epoch, t.batch = e.ep, 0
		t.epochLossSum, t.epochLossN = 0, 0
		for _, h := range hooks {
			if h.epochEnd != nil {
				if err := h.epochEnd(e); err != nil {
					return t.finish(sum), err
				}
			}
		}
	}
	sum = t.finish(sum)
	if t.trainSecs > 0 {
		sum.ImagesPerS = float64(t.trainSteps*cfg.Batch) / t.trainSecs
	}
	return sum, nil
}

// hooks are the run's hooks, in the order they run on each event.
func (t *trainer) hooks(ctx context.Context) []hook {
	hs := []hook{t.monitorHook(ctx), {start: func() error {
		if t.step == 0 {
			t.dist.wait() // for rank 0's kNN at init
		}
		return nil
	}}}
	if as, ok := t.method.(method.AfterStepper); ok {
		hs = append(hs, hook{step: func(*stepDone) error { return as.AfterStep(t.step) }})
	}
	if t.opts.AfterStep != nil {
		hs = append(hs, hook{step: func(s *stepDone) error { return t.opts.AfterStep(t.step, s.stats.Loss) }})
	}
	return append(hs, t.progressHook(), t.metricsHook(), t.checkpointHook(), t.plotHook(),
		hook{epochEnd: func(*epochDone) error { t.dist.wait(); return nil }}, // for rank 0's kNN, checkpoint and plots
		t.interruptHook(ctx))
}

// monitorHook is the kNN monitor: once at random initialisation (step 0,
// once per run), then after the epochs knnDue names; and the epoch's line
// on the progress output.
func (t *trainer) monitorHook(ctx context.Context) hook {
	skipped := 0
	return hook{
		start: func() error {
			if t.step != 0 || t.knn == nil {
				return nil
			}
			top1, top5, secs, err := t.knn.measure(t.tp, t.model.Encoder)
			if err != nil {
				return err
			}
			t.lastKNN = f64(top1)
			t.prog.println("kNN at init: top-1 %.2f%%  top-5 %.2f%%  (%.1fs)", 100*top1, 100*top5, secs)
			if err := t.metrics.write(Record{Type: "epoch", Epoch: 0, Step: 0, KNNTop1: f64(top1), KNNTop5: f64(top5), KNNS: f64(secs), WallS: f64(t.wall())}); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted before the first step (%w)", context.Cause(ctx))
			}
			return nil
		},
		epochEnd: func(e *epochDone) error {
			cfg := t.cfg
			if t.knn != nil && knnDue(cfg, e.ep) {
				top1, top5, secs, err := t.knn.measure(t.tp, t.model.Encoder)
				if err != nil {
					return err
				}
				t.lastKNNS = secs
				t.lastKNN = f64(top1)
				e.rec.KNNTop1, e.rec.KNNTop5, e.rec.KNNS = f64(top1), f64(top5), f64(secs)
				t.prog.println("epoch %d/%d: loss %.4f  kNN top-1 %.2f%%  top-5 %.2f%%  (train %.1fs, kNN %.1fs)",
					e.ep, cfg.Epochs, e.meanLoss, 100*top1, 100*top5, e.secs, secs)
			} else {
				t.prog.println("epoch %d/%d: loss %.4f  (%.1fs)", e.ep, cfg.Epochs, e.meanLoss, e.secs)
			}
			if st := t.loader.Stats(); st.Skipped > skipped && len(st.SkippedFiles) > 0 {
				t.prog.println("skipped %d unreadable images so far (skip_bad); first: %s", st.Skipped, st.SkippedFiles[0])
				skipped = st.Skipped
			}
			return nil
		},
	}
}

// progressHook updates the progress line after every step and writes a
// metrics step record every log_every steps and at each epoch's end, with
// the throughput and data-wait share since the last record.
func (t *trainer) progressHook() hook {
	var (
		logT     time.Time
		logWait  time.Duration
		logSteps int
		logComm  time.Duration // time in collectives (data-parallel runs)
	)
	reset := func() error {
		logT, logWait, logSteps, logComm = time.Now(), t.loader.Stats().WaitTime, 0, t.dist.comm.Total
		return nil
	}
	return hook{
		epochStart: reset,
		step: func(sd *stepDone) error {
			cfg := t.cfg
			total := cfg.Epochs * t.spe
			logSteps++
			logged := t.step%cfg.LogEvery == 0 || t.batch == t.spe
			elapsed := sd.at.Sub(logT).Seconds()
			wait := (t.loader.Stats().WaitTime - logWait).Seconds()
			stepS := t.trainSecs / float64(t.trainSteps)
			knnLeft := 0
			if t.knn != nil {
				knnLeft = countKNN(cfg, t.epoch, cfg.Epochs)
			}
			s := status{
				Epoch: t.epoch + 1, Epochs: cfg.Epochs, Step: t.step, TotalSteps: total,
				Loss: sd.stats.Loss, Acc: sd.stats.Accuracy, LR: sd.lr,
				ImgS:      float64(logSteps*cfg.Batch) / math.Max(elapsed, 1e-9),
				WaitShare: wait / math.Max(elapsed, 1e-9),
				ETA:       time.Duration((float64(total-t.step)*stepS + float64(knnLeft)*t.lastKNNS) * float64(time.Second)),
			}
			t.prog.update(s, logged)
			if !logged {
				return nil
			}
			rec := Record{Type: "step", Step: t.step, Epoch: t.epoch + 1, Loss: f64(sd.stats.Loss),
				ContrastiveAcc: f64(sd.stats.Accuracy), LR: f64(sd.lr), ImgS: f64(s.ImgS), DataWait: f64(s.WaitShare)}
			if t.dist.size() > 1 {
				rec.WorldSize = t.dist.size()
				rec.CommS = f64((t.dist.comm.Total - logComm).Seconds() / float64(logSteps))
			}
			if err := t.metrics.write(rec); err != nil {
				return err
			}
			return reset()
		},
	}
}

// metricsHook writes each epoch's record (which the monitor filled).
func (t *trainer) metricsHook() hook {
	return hook{epochEnd: func(e *epochDone) error {
		e.rec.WallS = f64(t.wall())
		return t.metrics.write(e.rec)
	}}
}

// checkpointHook writes a checkpoint every checkpoint_every steps within an
// epoch and at each epoch's end.
func (t *trainer) checkpointHook() hook {
	return hook{
		step: func(*stepDone) error {
			if t.batch == t.spe || t.cfg.CheckpointEvery == 0 || t.step%t.cfg.CheckpointEvery != 0 {
				return nil // an epoch's last step is checkpointed at its end
			}
			if err := t.checkpoint(); err != nil {
				return err
			}
			t.dist.wait()
			return nil
		},
		epochEnd: func(*epochDone) error { return t.checkpoint() },
	}
}

// plotHook redraws the plots at each epoch's end (rank 0's job).
func (t *trainer) plotHook() hook {
	return hook{epochEnd: func(*epochDone) error {
		if t.dist.root() {
			t.plot()
		}
		return nil
	}}
}

// interruptHook stops the run when ctx is cancelled (Ctrl-C), after the
// current step, with a checkpoint.
func (t *trainer) interruptHook(ctx context.Context) hook {
	stop := func() error {
		if ctx.Err() == nil {
			return nil
		}
		if t.step > t.lastCkptStep {
			if err := t.checkpoint(); err != nil {
				return err
			}
		}
		return fmt.Errorf("interrupted at step %d (%w); checkpoint %s; continue with --resume", t.step, context.Cause(ctx), orNone(t.lastCkpt))
	}
	return hook{
		step: func(*stepDone) error {
			if t.batch == t.spe {
				return nil // handled at the epoch's end
			}
			return stop()
		},
		epochEnd: func(*epochDone) error {
			if t.epoch >= t.cfg.Epochs {
				return nil // the run is complete
			}
			return stop()
		},
	}
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

// finish fills the summary from the run's position and metrics.
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
