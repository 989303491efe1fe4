package main

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/internal/atomicfile"
	"github.com/spf13/cobra"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

func init() { rootCmd.AddCommand(newAugmentCmd()) }

type augmentOpts struct {
	Image    string
	Preset   string
	N        int
	Seed     uint64
	Out      string
	ViewsDir string
}

func newAugmentCmd() *cobra.Command {
	var o augmentOpts
	c := &cobra.Command{
		Use:   "augment --image FILE [--preset cifar|imagenet|stl10] [--n 16] [--seed S] (--out grid.png | --views-dir DIR)",
		Short: "Show SimCLR augmentations of an image (grid of random views and single operators)",
		Long: `augment applies the SimCLR augmentation pipeline of a preset to one image.

With --out it writes a grid (PNG, or JPEG for a .jpg/.jpeg name): the
original (resized to the preset size and centre-cropped), N random views, then one labelled panel per single operator
(crop, flip, colour jitter, grayscale, blur, solarize), like Figure 4 of the
SimCLR paper. With --views-dir it writes N individual views as PNG files
(view_0000.png, ...). Views are shown denormalised, in [0,1].

The image is read by the dataset loader's decoder, with its limit of 2^26
(64 Mi) pixels checked on the header before any decoding.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAugment(o, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&o.Image, "image", "", "input image (JPEG, PNG or GIF)")
	f.StringVar(&o.Preset, "preset", "cifar", "augmentation preset: "+strings.Join(augment.PresetNames(), ", "))
	f.IntVar(&o.N, "n", 16, "number of random views")
	f.Uint64Var(&o.Seed, "seed", 1, "random seed")
	f.StringVar(&o.Out, "out", "", "output grid image: .png, or .jpg/.jpeg for JPEG")
	f.StringVar(&o.ViewsDir, "views-dir", "", "write N individual view PNGs into this directory instead of a grid")
	return c
}

func runAugment(o augmentOpts, stdout io.Writer) error {
	switch {
	case o.Image == "":
		return errors.New("augment: --image FILE is required")
	case o.Out == "" && o.ViewsDir == "":
		return errors.New("augment: give --out grid.png or --views-dir DIR")
	case o.Out != "" && o.ViewsDir != "":
		return errors.New("augment: --out and --views-dir are exclusive")
	case o.N < 0 || o.N > 1_000_000:
		return fmt.Errorf("augment: --n must be in [0, 1000000], got %d", o.N)
	}
	if o.Out != "" {
		if st, err := os.Stat(o.Out); err == nil && st.IsDir() {
			return fmt.Errorf("augment: --out %s is a directory; give a file name (grid.png) or use --views-dir", o.Out)
		}
		if _, err := imageEncoder(o.Out); err != nil {
			return err
		}
	}
	cfg, err := augment.Preset(o.Preset)
	if err != nil {
		return err
	}
	p, err := augment.New(cfg)
	if err != nil {
		return err
	}
	src, err := loadAugmentImage(o.Image)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	if o.ViewsDir != "" {
		if err := writeViews(p, src, o.N, rng, o.ViewsDir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %d views (%dx%d, preset %s) to %s\n", o.N, p.Size(), p.Size(), o.Preset, o.ViewsDir)
		return nil
	}
	grid, err := augmentGrid(p, src, o.N, rng)
	if err != nil {
		return err
	}
	if err := writeImage(o.Out, grid); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%dx%d: original, %d views, 6 single operators; preset %s)\n",
		o.Out, grid.Bounds().Dx(), grid.Bounds().Dy(), o.N, o.Preset)
	return nil
}

// loadAugmentImage decodes the image with the dataset loader's decoder, so
// that the header is checked against data.MaxImagePixels before any pixel
// memory is allocated (a small PNG can declare 30000x30000 pixels).
func loadAugmentImage(path string) (*augment.Image, error) {
	im, err := data.DecodeImageFile(path)
	if err != nil {
		return nil, fmt.Errorf("augment: --image: %w", err)
	}
	return im, nil
}

func writeViews(p *augment.Pipeline, src *augment.Image, n int, rng *rand.Rand, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("augment: cannot create views directory: %w", err)
	}
	var view augment.Image
	for i := range n {
		if err := p.ApplyImage(&view, src, p.Sample(rng, src.W, src.H)); err != nil {
			return err
		}
		if err := writeImage(filepath.Join(dir, fmt.Sprintf("view_%04d.png", i)), view.ToNRGBA()); err != nil {
			return err
		}
	}
	return nil
}

// writeImage writes m to path atomically (a temporary file in the same
// directory, renamed into place; removed on any failure), as PNG or, for a
// .jpg/.jpeg name, JPEG.
func writeImage(path string, m image.Image) error {
	enc, err := imageEncoder(path)
	if err != nil {
		return err
	}
	f, err := atomicfile.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return fmt.Errorf("augment: cannot write %s: %w", path, err)
	}
	tmp := f.Name()
	if err := enc(f, m); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("augment: encoding %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("augment: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("augment: writing %s: %w", path, err)
	}
	return nil
}

// imageEncoder picks the encoder from the file name's extension.
func imageEncoder(path string) (func(io.Writer, image.Image) error, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		return png.Encode, nil
	case ".jpg", ".jpeg":
		return func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, &jpeg.Options{Quality: 95}) }, nil
	}
	return nil, fmt.Errorf("augment: --out %s: want a .png, .jpg or .jpeg file name", path)
}

// Grid geometry.
const (
	gridPad    = 4
	gridLabelH = 16
	gridMinPx  = 96 // small presets are magnified (nearest neighbour) to this
	gridOps    = 6
)

type gridLayout struct {
	cell, cols, viewRows, opRows int
}

func newGridLayout(size, n int) gridLayout {
	l := gridLayout{cell: size, cols: min(max(n+1, gridOps), 8)}
	if size < gridMinPx {
		l.cell = size * ((gridMinPx + size - 1) / size)
	}
	l.viewRows = (n + 1 + l.cols - 1) / l.cols
	l.opRows = (gridOps + l.cols - 1) / l.cols
	return l
}

func (l gridLayout) bounds() image.Rectangle {
	w := l.cols*(l.cell+gridPad) + gridPad
	h := (l.viewRows+l.opRows)*(l.cell+gridLabelH+gridPad) + gridPad
	return image.Rect(0, 0, w, h)
}

// augmentGrid renders the original, n random views and one panel per
// single operator (each applied alone, with probability 1, to the original).
func augmentGrid(p *augment.Pipeline, src *augment.Image, n int, rng *rand.Rand) (*image.NRGBA, error) {
	size := p.Size()
	cfg := p.Config()
	l := newGridLayout(size, n)
	grid := image.NewNRGBA(l.bounds())
	draw.Draw(grid, grid.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	put := func(slot int, label string, im *augment.Image) {
		row, col := slot/l.cols, slot%l.cols
		x0 := gridPad + col*(l.cell+gridPad)
		y0 := gridPad + row*(l.cell+gridLabelH+gridPad)
		pasteScaled(grid, im, x0, y0, l.cell/size)
		drawLabel(grid, label, x0, y0+l.cell+12)
	}

	orig := &augment.Image{}
	if err := p.EvalImage(orig, src); err != nil {
		return nil, err
	}
	put(0, "original", orig)
	var view augment.Image
	for i := range n {
		if err := p.ApplyImage(&view, src, p.Sample(rng, src.W, src.H)); err != nil {
			return nil, err
		}
		put(i+1, fmt.Sprintf("view %d", i+1), &view)
	}

	// Single operators, as in Figure 4 of the paper.
	first := l.viewRows * l.cols
	crop := &augment.Image{}
	c := augment.SampleCrop(rng, src.W, src.H, [2]float64{cfg.CropScaleMin, cfg.CropScaleMax}, [2]float64{cfg.CropRatioMin, cfg.CropRatioMax})
	if err := augment.ResizedCrop(crop, src, c, size); err != nil {
		return nil, err
	}
	put(first, "crop", crop)

	op := func(f func(*augment.Image) error) (*augment.Image, error) {
		im := &augment.Image{W: orig.W, H: orig.H, Pix: append([]float32(nil), orig.Pix...)}
		return im, f(im)
	}
	strength := cfg.JitterStrength
	if strength == 0 {
		strength = 1
	}
	panels := []struct {
		label string
		f     func(*augment.Image) error
	}{
		{"flip", func(im *augment.Image) error { augment.HFlip(im); return nil }},
		{"color jitter", func(im *augment.Image) error {
			augment.ApplyJitter(im, augment.SampleJitter(rng, 0.8*strength, 0.8*strength, 0.8*strength, 0.2*strength))
			return nil
		}},
		{"grayscale", func(im *augment.Image) error { augment.Grayscale(im); return nil }},
		{"blur", func(im *augment.Image) error {
			lo, hi := cfg.BlurSigmaMin, cfg.BlurSigmaMax
			if !(lo > 0 && hi >= lo) {
				lo, hi = 0.1, 2.0
			}
			return augment.GaussianBlur(im, augment.BlurKernelSize(size), augment.SampleBlurSigma(rng, lo, hi))
		}},
		{"solarize", func(im *augment.Image) error { augment.Solarize(im, augment.SolarizeThreshold); return nil }},
	}
	for i, pn := range panels {
		im, err := op(pn.f)
		if err != nil {
			return nil, err
		}
		put(first+1+i, pn.label, im)
	}
	return grid, nil
}

func pasteScaled(dst *image.NRGBA, im *augment.Image, x0, y0, scale int) {
	n := im.W * im.H
	for y := 0; y < im.H*scale; y++ {
		for x := 0; x < im.W*scale; x++ {
			o := (y/scale)*im.W + x/scale
			i := dst.PixOffset(x0+x, y0+y)
			for c := 0; c < 3; c++ {
				v := im.Pix[c*n+o]
				dst.Pix[i+c] = uint8(min(max(v, 0), 1)*255 + 0.5)
			}
			dst.Pix[i+3] = 255
		}
	}
}

func drawLabel(dst draw.Image, s string, x, y int) {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
