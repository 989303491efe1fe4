// Command simclr trains image encoders with SimCLR and uses them.
//
// Each subcommand lives in its own file and registers itself on rootCmd
// from an init function.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/simclr-go/simclr/engine/dnnl"
)

var rootCmd = &cobra.Command{
	Use:           "simclr",
	Short:         "Contrastive self-supervised learning (SimCLR) in Go",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	dnnl.SetupProcess() // passive OpenMP waiting; may re-execute the program once
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "simclr:", err)
		os.Exit(1)
	}
}
