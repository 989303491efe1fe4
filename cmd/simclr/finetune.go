package main

import (
	"fmt"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/eval"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newFinetuneCmd()) }

func newFinetuneCmd() *cobra.Command {
	var f runFlags
	var trainSpec, testSpec string
	var frac, lrBase float64
	var epochs, batch int
	var seed int64
	c := &cobra.Command{
		Use:   "finetune --run RUNDIR --train SPEC --test SPEC --label-fraction 0.01|0.1|1",
		Short: "Fine-tune the whole encoder plus a new linear head on a class-balanced label subset",
		Long: `finetune is the paper's semi-supervised protocol (appendix B.5): it keeps a
class-balanced subset of --train (round(fraction*N/classes) images per class, chosen
reproducibly from --seed; the 1% subset is contained in the 10% one), adds a
zero-initialised linear head on h and trains encoder and head together on random
resized crop + flip views with SGD, Nesterov momentum 0.9, lr 0.05*B/256 with cosine
decay, no weight decay, BN in training mode. Default epochs: 60 for fractions up to
1%, 30 above. The test set is then classified with BN in inference mode.

The run's checkpoint is not modified. The last line on stdout is JSON with top1,
top5 (fractions) and the protocol.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			if !cmd.Flags().Changed("label-fraction") {
				return fmt.Errorf("--label-fraction is required (e.g. 0.01, 0.1 or 1)")
			}
			if !(frac > 0 && frac <= 1) {
				return fmt.Errorf("--label-fraction %g: want a fraction in (0, 1]", frac)
			}
			switch {
			case cmd.Flags().Changed("epochs") && epochs < 1:
				return fmt.Errorf("--epochs %d: want >= 1 (leave it out for the default: 60 for fractions <= 1%%, else 30)", epochs)
			case batch < 1:
				return fmt.Errorf("--batch %d: want >= 1", batch)
			case !positiveFinite(lrBase):
				return fmt.Errorf("--lr %g: want > 0", lrBase)
			}
			if !cmd.Flags().Changed("epochs") {
				epochs = 30
				if frac <= 0.01 {
					epochs = 60
				}
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
			labels := make([]int, tr.DS.Len())
			for i := range labels {
				if labels[i] = tr.Label(i); labels[i] < 0 {
					return fmt.Errorf("--train %s: image %s has no label", trainSpec, tr.DS.Name(i))
				}
			}
			idx, err := eval.BalancedSubset(labels, classes, frac, uint64(seed))
			if err != nil {
				return err
			}
			perClass := make([]int, classes)
			for _, i := range idx {
				perClass[labels[i]]++
			}
			enc := lr.Model.Encoder
			tf, err := lr.cropFlipPipeline()
			if err != nil {
				return err
			}
			head := eval.NewLinearHead(enc.OutDim(), classes)
			fmt.Fprintf(stderr, "fine-tuning on %d of %d labelled images (%g, per class %v), %d epochs, batch %d\n",
				len(idx), len(labels), frac, perClass, epochs, min(batch, len(idx)))
			err = eval.TrainSupervised(lr.Tape, enc, head, tr.DS, idx, tr.Label, tf, eval.SupervisedConfig{
				Epochs: epochs, Batch: batch, LR: lrBase, FineTune: true, Seed: uint64(seed), Workers: f.workers, Log: stderr})
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
			top1, top5, err := eval.ClassifierAccuracy(lr.Tape, enc, head, loader, te.Label)
			if err != nil {
				return fmt.Errorf("--test %s: %w", testSpec, err)
			}
			return printResult(cmd, result{
				Command: "finetune", Top1: top1, Top5: top5,
				Protocol: fmt.Sprintf("fine-tune encoder + zero-init linear head on h (paper B.5) with %g of the labels: class-balanced subset of %d images (seed %d), random resized crop + flip, SGD Nesterov momentum 0.9, lr %g*B/256 cosine, batch %d, %d epochs, no weight decay, BN in training mode; test on eval views with BN in inference mode",
					frac, len(idx), seed, lrBase, min(batch, len(idx)), epochs),
				Encoder: lr.Source, Train: trainSpec, Test: testSpec,
				NTrain: len(idx), NTest: te.DS.Len(), Classes: classes,
				Extra: map[string]any{"label_fraction": frac, "per_class": perClass, "seed": seed, "epochs": epochs},
			})
		},
	}
	addRunFlags(c, &f, true)
	c.Flags().StringVar(&trainSpec, "train", "", "labelled training data spec (the subset is drawn from it)")
	c.Flags().StringVar(&testSpec, "test", "", "labelled test data spec")
	c.Flags().Float64Var(&frac, "label-fraction", 0, "share of --train labels to use: 0.01, 0.1, 1 or any fraction in (0,1]")
	c.Flags().IntVar(&epochs, "epochs", 0, "epochs, >= 1 (when not given: 60 for fractions <= 1%, else 30)")
	c.Flags().IntVar(&batch, "batch", 256, "batch size")
	c.Flags().Float64Var(&lrBase, "lr", 0.05, "base learning rate (scaled by batch/256)")
	c.Flags().Int64Var(&seed, "seed", 0, "seed of the label subset and training order (default: the run's seed)")
	return c
}
