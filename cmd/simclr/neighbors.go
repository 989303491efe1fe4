package main

import (
	"fmt"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/eval"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newNeighborsCmd()) }

// maxGridCell bounds --cell: a picture side larger than this only magnifies
// dataset images into a huge file.
const maxGridCell = 1024

func newNeighborsCmd() *cobra.Command {
	var f runFlags
	var spec, out string
	var queries, k, cell int
	var seed uint64
	c := &cobra.Command{
		Use:   "neighbors --run RUNDIR --data SPEC --query N --out grid.png",
		Short: "Draw the nearest neighbours (cosine on h) of N query images as a PNG grid",
		Long: `neighbors embeds --data with the run's encoder (h, eval views, BN in inference
mode), picks N query images (a seeded random sample) and draws one row per query:
the query (blue frame) followed by its k most cosine-similar other images. On
labelled data a neighbour's frame is green when its label matches the query's and
red when not. The JSON line lists the query and neighbour indices and names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			if out == "" {
				return fmt.Errorf("--out grid.png is required")
			}
			if queries < 1 {
				return fmt.Errorf("--query %d: want at least 1 query image", queries)
			}
			if cell < 1 || cell > maxGridCell {
				return fmt.Errorf("--cell %d: want a picture side of 1 ... %d pixels", cell, maxGridCell)
			}
			if k < 1 {
				return fmt.Errorf("--k %d: want at least 1 neighbour per query", k)
			}
			ds, err := openData(spec, "data")
			if err != nil {
				return err
			}
			if ds.Len() < 2 {
				return fmt.Errorf("--data %s has %d image; neighbors needs at least 2 (a query and one other image)", spec, ds.Len())
			}
			if k >= ds.Len() {
				return fmt.Errorf("--k %d: %s has %d images, so a query has at most %d neighbours; want 1 <= k <= %d", k, spec, ds.Len(), ds.Len()-1, ds.Len()-1)
			}
			if w, h := eval.NeighborGridSize(min(queries, ds.Len()), k+1, cell); int64(w)*int64(h) > data.MaxImagePixels {
				return fmt.Errorf("the grid of %d queries x %d pictures of %d px would be %dx%d, over the limit of %d pixels; lower --query, --k or --cell",
					min(queries, ds.Len()), k+1, cell, w, h, data.MaxImagePixels)
			}
			lr, err := openRun(&f, stderr)
			if err != nil {
				return err
			}
			set := labeledSet{Spec: spec, DS: ds, Label: func(int) int { return 0 }}
			if ds.NumClasses() > 0 {
				set.Label = ds.Label
			}
			// Features of every image (n x dim floats; the images themselves
			// are re-read only for the grid).
			feats, _, err := lr.embedAll(set, &f, stderr)
			if err != nil {
				return err
			}
			n, dim := ds.Len(), lr.Model.Encoder.OutDim()
			q := eval.Subsample(n, min(queries, n), seed)
			nb, err := eval.Nearest(feats, n, dim, q, k)
			if err != nil {
				return err
			}
			rows := make([][]eval.GridCell, len(q))
			type entry struct {
				Query     int      `json:"query"`
				Name      string   `json:"name"`
				Neighbors []int    `json:"neighbors"`
				Names     []string `json:"neighbor_names"`
			}
			var report []entry
			for r, qi := range q {
				img, err := ds.Image(qi)
				if err != nil {
					return err
				}
				rows[r] = append(rows[r], eval.GridCell{Img: img, Border: eval.FrameQuery})
				e := entry{Query: qi, Name: ds.Name(qi), Neighbors: nb[r]}
				for _, j := range nb[r] {
					img, err := ds.Image(j)
					if err != nil {
						return err
					}
					frame := eval.FrameNone
					if ds.NumClasses() > 0 {
						frame = eval.FrameMiss
						if ds.Label(j) == ds.Label(qi) {
							frame = eval.FrameMatch
						}
					}
					rows[r] = append(rows[r], eval.GridCell{Img: img, Border: frame})
					e.Names = append(e.Names, ds.Name(j))
				}
				report = append(report, e)
			}
			if err := eval.SavePNG(out, eval.NeighborGrid(rows, cell)); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "wrote %s: %d queries x %d neighbours\n", out, len(q), k)
			return writeJSON(cmd, map[string]any{"out": out, "queries": report})
		},
	}
	addRunFlags(c, &f, true)
	c.Flags().StringVar(&spec, "data", "", "data spec to search (e.g. folder:PATH, cifar10:PATH@test)")
	c.Flags().StringVar(&out, "out", "", "output PNG")
	c.Flags().IntVar(&queries, "query", 8, "number of query images (a seeded random sample)")
	c.Flags().IntVar(&k, "k", 8, "neighbours per query")
	c.Flags().IntVar(&cell, "cell", 64, "side of each picture in the grid, in pixels (1 ... 1024; the whole grid is limited to 2^26 pixels)")
	c.Flags().Uint64Var(&seed, "seed", 1, "seed of the query sample")
	return c
}
