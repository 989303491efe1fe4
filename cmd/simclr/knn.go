package main

import (
	"fmt"

	"github.com/simclr-go/simclr/eval"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newKNNCmd()) }

func newKNNCmd() *cobra.Command {
	var f runFlags
	var trainSpec, testSpec string
	var k int
	var tau float64
	c := &cobra.Command{
		Use:   "knn --run RUNDIR --train SPEC --test SPEC",
		Short: "Weighted kNN accuracy of a trained encoder (cosine similarity on h)",
		Long: `knn embeds the labelled --train set (the memory bank) and the --test set with the
run's encoder (h, the features before the projection head; BN in inference mode;
deterministic evaluation views), L2-normalises them and classifies each test image
by a vote of its k most similar training images weighted by exp(sim/tau)
(Wu et al. 2018). The defaults k=200, tau=0.1 are lightly's (and the InstDisc
paper's); solo-learn's kNN callback defaults to k=20, T=0.07.

The last line on stdout is JSON with top1, top5 (fractions) and the protocol.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			if k < 1 {
				return fmt.Errorf("--k %d: want at least 1 neighbour", k)
			}
			if !positiveFinite(tau) {
				return fmt.Errorf("--tau %g: want a temperature > 0", tau)
			}
			tr, te, classes, _, err := openTrainTest(trainSpec, testSpec)
			if err != nil {
				return err
			}
			lr, err := openRun(&f, stderr)
			if err != nil {
				return err
			}
			trX, trY, err := lr.embedAll(tr, &f, stderr)
			if err != nil {
				return err
			}
			teX, teY, err := lr.embedAll(te, &f, stderr)
			if err != nil {
				return err
			}
			dim := lr.Model.Encoder.OutDim()
			top1, top5, err := eval.KNN(trX, trY, teX, teY, dim, k, tau, classes)
			if err != nil {
				return err
			}
			return printResult(cmd, result{
				Command: "knn", Top1: top1, Top5: top5,
				Protocol: fmt.Sprintf("weighted kNN (k=%d, tau=%g) on L2-normalised frozen h (%d-d), BN in inference mode, eval views, cosine similarity",
					min(k, len(trY)), tau, dim),
				Encoder: lr.Source, Train: trainSpec, Test: testSpec,
				NTrain: len(trY), NTest: len(teY), Classes: classes,
			})
		},
	}
	addRunFlags(c, &f, true)
	c.Flags().StringVar(&trainSpec, "train", "", "labelled memory-bank data spec (e.g. cifar10:PATH@train, folder:PATH)")
	c.Flags().StringVar(&testSpec, "test", "", "labelled query data spec (e.g. cifar10:PATH@test)")
	c.Flags().IntVar(&k, "k", 200, "neighbours")
	c.Flags().Float64Var(&tau, "tau", 0.1, "temperature of the weighted vote")
	return c
}
