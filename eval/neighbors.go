package eval

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/internal/atomicfile"
)

// Nearest returns, for each query row index, the k rows of feats (n rows of
// dim) with the highest cosine similarity, most similar first, excluding
// the query itself. Ties go to the lower index.
func Nearest(feats []float32, n, dim int, queries []int, k int) ([][]int, error) {
	if len(feats) != n*dim {
		return nil, fmt.Errorf("nearest: %d values for %d rows of %d", len(feats), n, dim)
	}
	if k < 1 || k > n-1 {
		return nil, fmt.Errorf("nearest: k = %d with %d items, want 1 <= k < items", k, n)
	}
	norm := make([]float64, n)
	for i := 0; i < n; i++ {
		s := 0.0
		for _, v := range feats[i*dim : (i+1)*dim] {
			s += float64(v) * float64(v)
		}
		norm[i] = math.Max(math.Sqrt(s), 1e-12)
	}
	out := make([][]int, len(queries))
	sims := make([]float64, n)
	idx := make([]int, n)
	for qi, q := range queries {
		if q < 0 || q >= n {
			return nil, fmt.Errorf("nearest: query %d outside [0,%d)", q, n)
		}
		qf := feats[q*dim : (q+1)*dim]
		for i := 0; i < n; i++ {
			s := 0.0
			for j, v := range feats[i*dim : (i+1)*dim] {
				s += float64(v) * float64(qf[j])
			}
			sims[i] = s / (norm[i] * norm[q])
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return sims[idx[a]] > sims[idx[b]] })
		res := make([]int, 0, k)
		for _, i := range idx {
			if i != q {
				res = append(res, i)
			}
			if len(res) == k {
				break
			}
		}
		out[qi] = res
	}
	return out, nil
}

// GridCell is one picture of a neighbour grid.
type GridCell struct {
	Img *augment.Image
	// Border colours the frame: the query's frame is blue; neighbours are
	// green when their label matches the query's, red when not, grey when
	// unlabeled.
	Border color.RGBA
}

// Frame colours used by callers of NeighborGrid.
var (
	FrameQuery = color.RGBA{30, 90, 220, 255}
	FrameMatch = color.RGBA{40, 170, 60, 255}
	FrameMiss  = color.RGBA{210, 40, 40, 255}
	FrameNone  = color.RGBA{150, 150, 150, 255}
)

// Grid geometry: each cell has a frame, and cells are separated by a gap.
const gridFrame, gridGap = 2, 4

// NeighborGridSize is the width and height of the NeighborGrid of rows x
// cols cells of cell x cell pixels, so that callers can bound it before
// computing anything.
func NeighborGridSize(rows, cols, cell int) (w, h int) {
	step := cell + 2*gridFrame + gridGap
	return gridGap + cols*step, gridGap + rows*step
}

// NeighborGrid draws rows of cells (a query followed by its neighbours) as
// one RGBA image; each picture is scaled (nearest neighbour) to cell x cell
// pixels inside a 2-pixel frame.
func NeighborGrid(rows [][]GridCell, cell int) *image.RGBA {
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	w, h := NeighborGridSize(len(rows), cols, cell)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	step := cell + 2*gridFrame + gridGap
	for ri, r := range rows {
		for ci, c := range r {
			x0, y0 := gridGap+ci*step, gridGap+ri*step
			for y := 0; y < cell+2*gridFrame; y++ {
				for x := 0; x < cell+2*gridFrame; x++ {
					img.SetRGBA(x0+x, y0+y, c.Border)
				}
			}
			src := c.Img
			if src == nil || src.W == 0 || src.H == 0 {
				continue
			}
			for y := 0; y < cell; y++ {
				sy := min(y*src.H/cell, src.H-1)
				for x := 0; x < cell; x++ {
					sx := min(x*src.W/cell, src.W-1)
					var px [3]uint8
					for ch := 0; ch < 3; ch++ {
						v := src.Pix[(ch*src.H+sy)*src.W+sx]
						px[ch] = uint8(math.Round(float64(min(max(v, 0), 1)) * 255))
					}
					img.SetRGBA(x0+gridFrame+x, y0+gridFrame+y, color.RGBA{px[0], px[1], px[2], 255})
				}
			}
		}
	}
	return img
}

// SavePNG writes img to path atomically.
func SavePNG(path string, img image.Image) error {
	f, err := atomicfile.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("png %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("png %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("png %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("png %s: %w", path, err)
	}
	return nil
}
