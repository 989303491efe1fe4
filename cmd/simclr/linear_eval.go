package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/nn"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newLinearEvalCmd()) }

// encoderHash fingerprints every parameter and buffer (BN running
// statistics included) of an encoder.
func encoderHash(m nn.Module) string {
	h := sha256.New()
	var b [4]byte
	put := func(name string, x []float32) {
		h.Write([]byte(name))
		for _, v := range x {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			h.Write(b[:])
		}
	}
	for _, p := range m.Params() {
		put(p.Name, p.T.Data())
	}
	for _, p := range m.Buffers() {
		put(p.Name, p.T.Data())
	}
	return hex.EncodeToString(h.Sum(nil))
}

func newLinearEvalCmd() *cobra.Command {
	var f runFlags
	var trainSpec, testSpec, aug string
	var epochs, maxIter, batch int
	var lrBase, valFrac float64
	var seed int64
	c := &cobra.Command{
		Use:   "linear-eval --run RUNDIR --train SPEC --test SPEC",
		Short: "Linear evaluation of a frozen encoder (the standard SimCLR protocol)",
		Long: `linear-eval freezes the run's encoder (its weights and BN running statistics are
never changed; BN runs in inference mode) and trains a linear classifier on h.

--augment none (default, fast): h is computed once per image (deterministic eval
view), standardised with train statistics, and a multinomial logistic regression is
fitted by L-BFGS. Its L2 strength is chosen from a grid by accuracy on a seeded,
class-stratified validation split (--val-fraction) of --train, then the model is
refitted on all of --train (the paper's transfer protocol, appendix B.8).

--augment crop-flip: the paper's B.6 protocol. Each step runs the frozen encoder
on random resized crop + flip views, and a zero-initialised linear head is trained
with SGD, Nesterov momentum 0.9, lr 0.1*B/256 with cosine decay, no regularisation,
for --epochs epochs.

The last line on stdout is JSON with top1, top5 (fractions) and the protocol.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			if aug != "none" && aug != "crop-flip" {
				return fmt.Errorf("--augment %q: want none or crop-flip", aug)
			}
			switch {
			case !(valFrac > 0 && valFrac < 1):
				return fmt.Errorf("--val-fraction %g: want a fraction in (0, 1)", valFrac)
			case maxIter < 1:
				return fmt.Errorf("--max-iter %d: want >= 1", maxIter)
			case epochs < 1:
				return fmt.Errorf("--epochs %d: want >= 1", epochs)
			case batch < 1:
				return fmt.Errorf("--batch %d: want >= 1", batch)
			case !positiveFinite(lrBase):
				return fmt.Errorf("--lr %g: want > 0", lrBase)
			}
			tr, te, classes, _, err := openTrainTest(trainSpec, testSpec)
			if err != nil {
				return err
			}
			lr, err := openRun(&f, stderr)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("seed") {
				seed = lr.Run.Config.Seed
			}
			enc := lr.Model.Encoder
			before := encoderHash(enc)
			res := result{Command: "linear-eval", Encoder: lr.Source, Train: trainSpec, Test: testSpec, Classes: classes}
			details := map[string]any{"augment": aug, "seed": seed}
			dim := enc.OutDim()
			if aug == "none" {
				trX, trY, err := lr.embedAll(tr, &f, stderr)
				if err != nil {
					return err
				}
				teX, teY, err := lr.embedAll(te, &f, stderr)
				if err != nil {
					return err
				}
				// A tuned backend (oneDNN) does the objective's products in
				// float32, several times faster; otherwise float64 gonum.
				pcfg := eval.ProbeConfig{ValFraction: valFrac, Seed: uint64(seed), MaxIter: maxIter}
				products := "float64 gonum"
				if b := eval.ProductBackend(lr.Backend); b != nil {
					pcfg.Backend, products = b, "float32 "+b.Name()
				}
				fmt.Fprintf(stderr, "fitting logistic regression (L-BFGS, %d L2 values on a %.0f%% validation split, %s products)...\n", len(eval.DefaultLambdas), 100*valFrac, products)
				t0 := time.Now()
				pr, err := eval.LinearProbe(trX, trY, teX, teY, dim, classes, pcfg)
				if err != nil {
					return err
				}
				for _, g := range pr.Grid {
					fmt.Fprintf(stderr, "  lambda %-7g val top-1 %.2f%% (%d iterations)\n", g.Lambda, 100*g.ValTop1, g.Iterations)
				}
				fitS := time.Since(t0).Seconds()
				fmt.Fprintf(stderr, "  refit at lambda %g: %d iterations; %d passes over the data in %.1f s\n", pr.Lambda, pr.Iterations, pr.Evaluations, fitS)
				res.Top1, res.Top5, res.NTrain, res.NTest = pr.Top1, pr.Top5, len(trY), len(teY)
				res.Protocol = fmt.Sprintf("frozen encoder (weights and BN statistics fixed, BN in inference mode), precomputed h (%d-d, eval views); ", dim) + pr.Protocol(valFrac)
				details["lambda"], details["grid"], details["train_top1"], details["lbfgs_iterations"] = pr.Lambda, pr.Grid, pr.TrainTop1, pr.Iterations
				details["lbfgs_passes"], details["fit_s"], details["products"] = pr.Evaluations, fitS, products
			} else {
				tf, err := lr.cropFlipPipeline()
				if err != nil {
					return err
				}
				idx := make([]int, tr.DS.Len())
				for i := range idx {
					idx[i] = i
					if tr.Label(i) < 0 {
						return fmt.Errorf("--train %s: image %s has no label", trainSpec, tr.DS.Name(i))
					}
				}
				head := eval.NewLinearHead(dim, classes)
				fmt.Fprintf(stderr, "training a linear head through the frozen encoder on crop+flip views: %d images, %d epochs, batch %d\n", len(idx), epochs, batch)
				err = eval.TrainSupervised(lr.Tape, enc, head, tr.DS, idx, tr.Label, tf, eval.SupervisedConfig{
					Epochs: epochs, Batch: batch, LR: lrBase, Seed: uint64(seed), Workers: f.workers, Log: stderr})
				if err != nil {
					return err
				}
				etf, err := lr.evalPipeline()
				if err != nil {
					return err
				}
				loader, err := data.NewEvalLoader(te.DS, etf, f.batch, f.workers)
				if err != nil {
					return err
				}
				if res.Top1, res.Top5, err = eval.ClassifierAccuracy(lr.Tape, enc, head, loader, te.Label); err != nil {
					return fmt.Errorf("--test %s: %w", testSpec, err)
				}
				res.NTrain, res.NTest = len(idx), te.DS.Len()
				res.Protocol = fmt.Sprintf("frozen encoder (weights and BN statistics fixed, BN in inference mode), linear head on h (%d-d) trained through the encoder on random resized crop + flip views (paper B.6): zero-init, SGD Nesterov momentum 0.9, lr %g*B/256 cosine, batch %d, %d epochs, no regularisation; test on eval views",
					dim, lrBase, min(batch, len(idx)), epochs)
			}
			after := encoderHash(enc)
			details["encoder_sha256_before"], details["encoder_sha256_after"] = before, after
			if after != before {
				return fmt.Errorf("internal error: the encoder changed during linear evaluation (sha256 %s -> %s)", before[:12], after[:12])
			}
			res.Extra = details
			return printResult(cmd, res)
		},
	}
	addRunFlags(c, &f, true)
	c.Flags().StringVar(&trainSpec, "train", "", "labelled training data spec")
	c.Flags().StringVar(&testSpec, "test", "", "labelled test data spec")
	c.Flags().StringVar(&aug, "augment", "none", "none (precomputed features, L-BFGS) | crop-flip (train through the frozen encoder, paper B.6)")
	c.Flags().IntVar(&epochs, "epochs", 90, "epochs of SGD for --augment crop-flip")
	c.Flags().IntVar(&maxIter, "max-iter", 500, "L-BFGS iterations per fit for --augment none (>= 1)")
	c.Flags().IntVar(&batch, "batch", 256, "batch size for --augment crop-flip")
	c.Flags().Float64Var(&lrBase, "lr", 0.1, "base learning rate for --augment crop-flip (scaled by batch/256)")
	c.Flags().Float64Var(&valFrac, "val-fraction", 0.1, "share of --train held out to choose the L2 strength, in (0, 1)")
	c.Flags().Int64Var(&seed, "seed", 0, "seed of the validation split and SGD order (default: the run's seed)")
	return c
}
