package main

import (
	"fmt"
	"strconv"

	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/nn"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newExportCmd()) }

func newExportCmd() *cobra.Command {
	var f runFlags
	var out string
	c := &cobra.Command{
		Use:   "export --run RUNDIR --out encoder.safetensors",
		Short: "Export the encoder as a torchvision ResNet state_dict (safetensors)",
		Long: `export writes the run's encoder (f, without the projection head) as a safetensors
file whose tensor names and shapes are exactly those of torchvision's ResNet
state_dict without fc: conv1.weight, bn1.{weight,bias,running_mean,running_var,
num_batches_tracked}, layer1.0.conv1.weight, ... (float32; num_batches_tracked as
int64 scalars). The metadata records arch, width, stem, base_channels, the
preset, image size and normalisation, and a CRC-32C of every tensor
(simclr_checksums; PyTorch ignores it). The file can be given to --run of
embed, knn, linear-eval, finetune and neighbors, which verify it (checksums,
finite weights) before use.

In PyTorch (see scripts/check_export.py, which also checks the embeddings):

    import torch, torchvision
    from safetensors.torch import load_file    # or scripts/check_export.py's reader
    m = torchvision.models.resnet18()
    # CIFAR stem (metadata stem == "cifar"): 3x3 stride-1 conv1, no max-pool
    m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = torch.nn.Identity()
    m.fc = torch.nn.Identity()                  # h = global-average-pooled features
    m.load_state_dict(load_file("encoder.safetensors"))   # strict
    m.eval()

Inputs are normalised as in the run's preset (e.g. CIFAR mean/std). A width other
than 1 needs torchvision's ResNet rebuilt with the stem width base_channels; the
script shows how.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out FILE.safetensors is required")
			}
			lr, err := openRun(&f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			enc, ok := lr.Model.Encoder.(nn.Encoder)
			if !ok {
				return fmt.Errorf("export: the encoder of %s is a %T, not one of nn's architectures (nn.ArchNames)", lr.Source, lr.Model.Encoder)
			}
			rc := enc.Config()
			a := lr.Aug
			meta := map[string]string{
				"arch":          rc.Arch,
				"width":         strconv.FormatFloat(rc.Width, 'g', -1, 64),
				"stem":          rc.Stem,
				"base_channels": strconv.Itoa(nn.BaseChannels(rc.Width)),
				"in_channels":   strconv.Itoa(enc.InChannels()),
				"out_dim":       strconv.Itoa(enc.OutDim()),
				"image_size":    strconv.Itoa(a.Size),
				"preset":        lr.Run.Config.Preset,
				"mean":          fmt.Sprintf("%g,%g,%g", a.Mean[0], a.Mean[1], a.Mean[2]),
				"std":           fmt.Sprintf("%g,%g,%g", a.Std[0], a.Std[1], a.Std[2]),
				"source":        lr.Source,
			}
			if err := eval.ExportEncoder(out, enc, meta); err != nil {
				return err
			}
			n := len(enc.Params()) + len(enc.Buffers()) + len(enc.Counters())
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d tensors (%s x%g, %s stem, h %d-d), torchvision names\n", out, n, rc.Arch, rc.Width, rc.Stem, enc.OutDim())
			fmt.Fprintf(cmd.OutOrStdout(), "{\"out\":%q,\"tensors\":%d,\"arch\":%q,\"width\":%g,\"stem\":%q}\n", out, n, rc.Arch, rc.Width, rc.Stem)
			return nil
		},
	}
	addRunFlags(c, &f, true)
	c.Flags().StringVar(&out, "out", "", "output .safetensors file")
	return c
}
