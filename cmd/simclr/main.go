// Command simclr trains image encoders with SimCLR and uses them.
//
// Each subcommand lives in its own file and registers itself on rootCmd
// from an init function.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/simclr-go/simclr/engine/dnnl"
)

var rootCmd = &cobra.Command{
	Use:           "simclr",
	Short:         "Contrastive self-supervised learning (SimCLR) in Go",
	SilenceUsage:  true,
	SilenceErrors: true,
}

// cpuProfile is the --cpuprofile file of any subcommand (go tool pprof).
var cpuProfile string

func init() {
	rootCmd.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the command to this file (go tool pprof; oneDNN's time shows as cgo calls of one thread)")
	rootCmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkLauncher(cmd.Name()); err != nil {
			return err
		}
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("--cpuprofile %s: %w", cpuProfile, err)
		}
		return nil
	}
}

func main() {
	dnnl.SetupProcess() // passive OpenMP waiting; may re-execute the program once
	err := rootCmd.Execute()
	pprof.StopCPUProfile() // flushes the profile; a no-op without one
	endComm(err)           // under mpirun: finalize, or abort the whole job on an error
	if err != nil {
		fmt.Fprintln(os.Stderr, "simclr:", err)
		os.Exit(1)
	}
}
