package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/simclr-go/simclr/train"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newPretrainCmd()) }

func newPretrainCmd() *cobra.Command {
	var fl *train.Flags
	var dumpGrads string
	cmd := &cobra.Command{
		Use:   "pretrain --data SPEC --out RUNDIR [--config FILE.yaml] [flags]",
		Short: "Pretrain an encoder with SimCLR on unlabelled images (or SupCon on labelled ones)",
		Long: `Pretrain a ResNet encoder and projection head with SimCLR (NT-Xent loss,
LARS by default) on the images of --data, writing RUNDIR. --method supcon
trains with supervised contrastive learning instead (every view of the same
class is a positive), on labelled data such as a class folder. RUNDIR holds:

  RUNDIR/config.yaml                      the resolved configuration
  RUNDIR/checkpoints/ckpt-<step>.safetensors  weights, optimizer and position
  RUNDIR/tuning.json                      kernel choices timed by this run (reused by --resume)
  RUNDIR/metrics.jsonl                    one JSON object per logged step and epoch
  RUNDIR/plots/{loss,lr,knn}.png          training curves
  RUNDIR/.simclr-writer.lock              the writer lock (PID of the last writer)

One process writes a run directory at a time: pretrain holds an OS lock on
it (released when the process ends, however it ends), and a second pretrain
on the same --out, new or --resume, fails at once naming the PID that holds
it. knn, embed, linear-eval, finetune, neighbors, export and plot only read
the run (plot rewrites plots/ atomically) and may run beside training.

Checkpoints carry a CRC-32C of every tensor; loading one verifies it and
that every weight is finite. When the newest is damaged, --resume refuses
it and lists the older checkpoints that verify; --resume-from PATH continues
from one of them (later checkpoints are moved to checkpoints/superseded/).

Every hyperparameter is a flag and a key of the --config YAML file (the flag
name with underscores: --weight-decay is weight_decay); flags given
explicitly override the file. --resume continues the run in --out from its
last checkpoint, with the run's config.yaml as the base configuration.
Ctrl-C stops after the current step with a checkpoint; a resumed run
continues bit for bit on the same machine and --threads. --deterministic
makes two fresh runs bit-identical too (see the README). The run ends with a
one-line JSON summary on stdout.

Under mpirun (mpirun -np N simclr pretrain ...) the global batch --batch is
spread over N processes (--threads each); see the README's section on
several machines. Only rank 0 writes RUNDIR and prints.`,
		Example: `  simclr pretrain --out runs/fmnist --epochs 5 --batch 128 --width 0.25
  simclr pretrain --data cifar10:data/cifar10@train --out runs/c10 --config c10.yaml
  simclr pretrain --out runs/c10 --resume
  simclr pretrain --out runs/c10 --resume-from runs/c10/checkpoints/ckpt-00001950.safetensors`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := pretrainConfig(fl)
			if err != nil {
				return err
			}
			comm, err := initComm()
			if err != nil {
				return err
			}
			// The first Ctrl-C (or SIGTERM) stops after the current step with
			// a checkpoint; a second one kills at once.
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			go func() {
				select {
				case <-sigs:
					signal.Stop(sigs)
					fmt.Fprintln(cmd.ErrOrStderr(), "\nsimclr: stopping after this step with a checkpoint (Ctrl-C again to kill)")
					cancel()
				case <-ctx.Done():
				}
			}()
			sum, err := train.Pretrain(ctx, cfg, cmd.ErrOrStderr(), train.Options{Comm: comm, DumpGrads: dumpGrads})
			if err != nil {
				return err
			}
			b, err := json.Marshal(sum)
			if err != nil {
				return err
			}
			if comm.Rank() == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			}
			return nil
		},
	}
	fl = train.BindFlags(cmd.Flags(), train.DefaultConfig())
	cmd.Flags().StringVar(&dumpGrads, "debug-dump-grads", "", "write the (summed) gradients of step 1 to this file (float32, model order); for the distributed-equivalence test")
	_ = cmd.Flags().MarkHidden("debug-dump-grads")
	return cmd
}

// pretrainConfig resolves the configuration: defaults, then (when resuming
// without --config) the run's own config.yaml, then --config, then the
// flags given explicitly.
func pretrainConfig(fl *train.Flags) (train.Config, error) {
	cfg := train.DefaultConfig()
	probe := cfg
	fl.Apply(&probe) // to learn --out, --resume and --resume-from
	if (probe.Resume || probe.ResumeFrom != "") && fl.ConfigFile() == "" && probe.Out != "" {
		path := filepath.Join(probe.Out, "config.yaml")
		if _, err := os.Stat(path); err == nil {
			if err := cfg.LoadConfigFile(path); err != nil {
				return cfg, err
			}
		}
	}
	if f := fl.ConfigFile(); f != "" {
		if err := cfg.LoadConfigFile(f); err != nil {
			return cfg, err
		}
	}
	fl.Apply(&cfg)
	if cfg.Out == "" {
		return cfg, fmt.Errorf("--out RUNDIR is required (the run directory for checkpoints, metrics and plots)")
	}
	return cfg, nil
}
