package main

import (
	"fmt"
	"path/filepath"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/nn"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newEmbedCmd()) }

func newEmbedCmd() *cobra.Command {
	var f runFlags
	var spec, out, layer, plotPath, projection string
	var plotPoints int
	var seed uint64
	c := &cobra.Command{
		Use:   "embed --run RUNDIR --data SPEC --out FILE.npy|FILE.csv",
		Short: "Write the embeddings of a dataset (h or z) to .npy or .csv, in dataset order",
		Long: `embed runs the run's encoder over every image of --data (deterministic evaluation
view, BN in inference mode) and writes one row per image, in dataset order.

--layer h (default) is the representation used downstream (global-average-pooled
encoder output); --layer z is the projection head's output that the loss saw.

FILE.npy is a float32 [N, D] array (numpy.load); FILE.names.txt (one image name a
line), FILE.labels.txt and FILE.classes.txt (when the data are labelled) go alongside.
FILE.csv has the columns index, name, [label, class,] e0 ... e{D-1}.
Rows are written batch by batch and never held: what grows with the dataset is only
its file index (for a folder, a path and a label, ~100 bytes per image).

--tsne PNG also draws a 2-D map of (a seeded subsample of) the embeddings coloured
by label: exact t-SNE (default, up to 1000 points, ~30 s) or PCA (--projection pca, up to
5000 points).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			if out == "" {
				return fmt.Errorf("--out FILE.npy or FILE.csv is required")
			}
			if layer != "h" && layer != "z" {
				return fmt.Errorf("--layer %q: want h or z", layer)
			}
			if projection != "tsne" && projection != "pca" {
				return fmt.Errorf("--projection %q: want tsne or pca", projection)
			}
			if cmd.Flags().Changed("plot-points") && plotPoints < 1 {
				return fmt.Errorf("--plot-points %d: want >= 1 (or leave it out for the default)", plotPoints)
			}
			ds, err := openData(spec, "data")
			if err != nil {
				return err
			}
			lr, err := openRun(&f, stderr)
			if err != nil {
				return err
			}
			var net nn.Net = lr.Model.Encoder
			if layer == "z" {
				if lr.Model.Head == nil {
					return fmt.Errorf("--layer z: %s has no projection head (an exported encoder); use --layer h or the run directory", f.run)
				}
				net = lr.Model
			}
			dim := net.OutDim()
			labeled := ds.NumClasses() > 0
			w, err := eval.CreateEmbeddingFile(out, ds.Len(), dim, labeled, ds.ClassNames())
			if err != nil {
				return err
			}
			tf, err := lr.evalPipeline()
			if err != nil {
				return err
			}
			loader, err := data.NewEvalLoader(ds, tf, f.batch, f.workers)
			if err != nil {
				return err
			}
			// Keep only the rows of a fixed subsample for the plot.
			if plotPoints <= 0 {
				plotPoints = 1000
				if projection == "pca" {
					plotPoints = 5000
				}
			}
			var keep map[int]bool
			var pX []float32
			var pY []int
			if plotPath != "" {
				keep = map[int]bool{}
				for _, i := range eval.Subsample(ds.Len(), plotPoints, seed) {
					keep[i] = true
				}
			}
			names := make([]string, 0, f.batch)
			done := 0
			err = eval.Embed(lr.Tape, net, loader, func(b *data.EvalBatch, h []float32) error {
				names = names[:0]
				for _, i := range b.Indices {
					names = append(names, ds.Name(i))
				}
				var labels []int
				if labeled {
					labels = b.Labels
				}
				if err := w.Write(h, labels, names); err != nil {
					return err
				}
				for r, i := range b.Indices {
					if keep[i] {
						pX = append(pX, h[r*dim:(r+1)*dim]...)
						pY = append(pY, b.Labels[r])
					}
				}
				done += b.N
				if done%(50*f.batch) < b.N {
					fmt.Fprintf(stderr, "embedded %d/%d images\n", done, ds.Len())
				}
				return nil
			})
			if err != nil {
				w.Close() // removes the partial files
				return fmt.Errorf("embedding %s: %w", spec, err)
			}
			if err := w.Close(); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "wrote %d x %d %s embeddings of %s to %v\n", ds.Len(), dim, layer, spec, w.Files())
			if plotPath != "" {
				n := len(pY)
				var pts []float64
				title := fmt.Sprintf("%s of %s (%d points), %s", layer, filepath.Base(spec), n, projection)
				if projection == "pca" {
					pts, err = eval.PCA(pX, n, dim, 2)
				} else {
					fmt.Fprintf(stderr, "t-SNE of %d points...\n", n)
					pts, err = eval.TSNE(pX, n, dim, eval.TSNEConfig{Seed: seed})
				}
				if err != nil {
					return err
				}
				if err := eval.ScatterPNG(plotPath, pts, pY, ds.ClassNames(), title); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "wrote %s\n", plotPath)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "{\"out\":%q,\"rows\":%d,\"dim\":%d,\"layer\":%q}\n", out, ds.Len(), dim, layer)
			return nil
		},
	}
	addRunFlags(c, &f, true)
	c.Flags().StringVar(&spec, "data", "", "data spec to embed (e.g. folder:PATH, cifar10:PATH@test)")
	c.Flags().StringVar(&out, "out", "", "output file: .npy (float32 array + .names/.labels/.classes.txt) or .csv")
	c.Flags().StringVar(&layer, "layer", "h", "h (encoder output, for downstream use) | z (projection head output)")
	c.Flags().StringVar(&plotPath, "tsne", "", "also draw a 2-D scatter of the embeddings coloured by label to this PNG")
	c.Flags().StringVar(&projection, "projection", "tsne", "2-D map for --tsne: tsne | pca")
	c.Flags().IntVar(&plotPoints, "plot-points", 0, "points in the 2-D map, >= 1 (when not given: 1000 for t-SNE, 5000 for PCA; a seeded subsample)")
	c.Flags().Uint64Var(&seed, "seed", 1, "seed of the plot subsample and t-SNE")
	return c
}
