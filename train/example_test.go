package train_test

import (
	"fmt"

	"github.com/simclr-go/simclr/train"
	"github.com/spf13/pflag"
)

// Flags and YAML keys share names; flags given explicitly win over the file.
func ExampleBindFlags() {
	fs := pflag.NewFlagSet("pretrain", pflag.ContinueOnError)
	fl := train.BindFlags(fs, train.DefaultConfig())
	_ = fs.Parse([]string{"--out", "runs/demo", "--batch", "128", "--weight-decay", "5e-4"})

	cfg := train.DefaultConfig() // (a --config file would be loaded here)
	fl.Apply(&cfg)
	if err := cfg.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := cfg.Resolve(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Out, cfg.Batch, cfg.WeightDecay, cfg.Optimizer, cfg.Stem, cfg.Temperature)
	// Output: runs/demo 128 0.0005 lars cifar 0.5
}
