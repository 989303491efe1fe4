package main

import (
	"fmt"
	"path/filepath"

	"github.com/simclr-go/simclr/train"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newPlotCmd()) }

func newPlotCmd() *cobra.Command {
	var run string
	c := &cobra.Command{
		Use:   "plot --run RUNDIR",
		Short: "Redraw a run's training curves (loss, learning rate, kNN accuracy) as PNGs",
		Long: `plot reads RUNDIR/metrics.jsonl and redraws RUNDIR/plots/loss.png, lr.png and
knn.png (pretraining draws them too; use this while a run is in progress or after
copying a run directory). It takes no writer lock: the plots are derived from
metrics.jsonl and replaced atomically, so it may run beside pretrain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if run == "" {
				return fmt.Errorf("--run RUNDIR is required")
			}
			if err := train.Plot(run); err != nil {
				return err
			}
			dir := filepath.Join(run, "plots")
			fmt.Fprintf(cmd.ErrOrStderr(), "plots written to %s\n", dir)
			fmt.Fprintf(cmd.OutOrStdout(), "{\"plots\":%q}\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&run, "run", "", "run directory written by 'simclr pretrain'")
	return c
}
