package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"sync"

	"github.com/simclr-go/simclr/augment"
)

// Dataset8 is implemented by datasets that can hand out images as
// interleaved 8-bit RGB. Loaders use it, through a type assertion, with a
// transform that has View8/Eval8 (Transform8): decoders then skip the
// conversion of the whole image to float32, and only the pixels under a
// crop are converted. The views equal those of the float path exactly.
type Dataset8 interface {
	// Image8 returns image i as 8-bit RGB with the same values as
	// Image(i)*255. For an image that 8 bits cannot hold exactly (16-bit
	// or translucent PNG, CMYK JPEG, ...) it returns an error wrapping
	// ErrNot8Bit, and the caller uses Image(i).
	Image8(i int) (*augment.Image8, error)
}

// Transform8 is implemented by transforms that read 8-bit images directly;
// *augment.Pipeline does. View8 must consume rng as View does and give the
// same result as View on the converted image.
type Transform8 interface {
	View8(dst []float32, src *augment.Image8, rng *rand.Rand) error
	Eval8(dst []float32, src *augment.Image8) error
}

// ErrNot8Bit says an image has values that 8-bit RGB cannot hold exactly.
var ErrNot8Bit = errors.New("image is not representable exactly as 8-bit RGB")

// pix8Pool recycles the pixel buffers of decoded 8-bit images: a 500x375
// image is 560 kB, which the runtime would otherwise clear on every
// allocation.
var pix8Pool sync.Pool

func newPooledImage8(w, h int) *augment.Image8 {
	n := 3 * w * h
	if v, ok := pix8Pool.Get().(*augment.Image8); ok && cap(v.Pix) >= n {
		v.W, v.H, v.Pix = w, h, v.Pix[:n]
		return v
	}
	return &augment.Image8{W: w, H: h, Pix: make([]uint8, n)}
}

// ReleaseImage8 hands img's buffer back for reuse by later decodes. Call it
// only when nothing references img any more; img must not be used after.
func ReleaseImage8(img *augment.Image8) {
	if img != nil && cap(img.Pix) > 0 {
		pix8Pool.Put(img)
	}
}

// DecodeImage8 decodes an encoded image into interleaved 8-bit RGB with
// the values DecodeImage gives times 255. JPEGs built with cgo are decoded
// by libjpeg straight into the result; others through image.Decode and
// augment.FromImage8. An image 8 bits cannot hold exactly gives an error
// wrapping ErrNot8Bit (use DecodeImage). The buffer comes from a pool; pass
// the image to ReleaseImage8 when done with it to recycle it.
func DecodeImage8(b []byte) (*augment.Image8, error) {
	if isJPEG(b) {
		if img, ok, err := decodeJPEGNative8(b); ok {
			return img, err
		}
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		if _, err := decodeGo(b); err != nil { // for its error message
			return nil, err
		}
		return nil, fmt.Errorf("decoding header: %w", err)
	}
	switch cfg.ColorModel {
	case color.YCbCrModel, color.RGBAModel, color.NRGBAModel, color.GrayModel:
	default:
		return nil, fmt.Errorf("%s: %w", format, ErrNot8Bit)
	}
	if err := checkSize(format, cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	m, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", format, err)
	}
	img := newPooledImage8(1, 1)
	if !augment.FromImage8(img, m) {
		ReleaseImage8(img)
		return nil, fmt.Errorf("%s (%T): %w", format, m, ErrNot8Bit)
	}
	return img, nil
}

// DecodeImageFile8 reads and decodes one image file with DecodeImage8.
func DecodeImageFile8(path string) (*augment.Image8, error) {
	b, err := readImageFile(path)
	if err != nil {
		return nil, err
	}
	img, err := DecodeImage8(b)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	return img, nil
}

func (d *folderDataset) Image8(i int) (*augment.Image8, error) {
	if err := checkIndex("folder:"+d.root, i, len(d.paths)); err != nil {
		return nil, err
	}
	return DecodeImageFile8(d.paths[i])
}

// pooled8 marks datasets whose Image8 results are fresh buffers the loader
// may recycle with ReleaseImage8.
func (d *folderDataset) pooled8() {}
func (d *recordDataset) pooled8() {}

func (d *recordDataset) Image8(i int) (*augment.Image8, error) {
	if err := checkIndex(d.prefix, i, d.n); err != nil {
		return nil, err
	}
	rl := d.recLen()
	var rec []byte
	if d.file != nil {
		rec = make([]byte, rl)
		if _, err := d.file.ReadAt(rec, d.fileOff+int64(i)*int64(rl)); err != nil {
			return nil, fmt.Errorf("%s: %s: reading image %d: %w", d.prefix, d.file.Name(), i, err)
		}
	} else {
		rec = d.pix[i*rl : (i+1)*rl]
	}
	w, h := d.w, d.h
	img := newPooledImage8(w, h)
	pix := img.Pix
	switch d.layout {
	case planarRowMajor:
		n := w * h
		r, g, b := rec[:n], rec[n:2*n], rec[2*n:3*n]
		for k := range n {
			pix[3*k], pix[3*k+1], pix[3*k+2] = r[k], g[k], b[k]
		}
	case planarColMajor:
		for c := range 3 {
			src := rec[c*w*h : (c+1)*w*h]
			for x := range w {
				col := src[x*h : (x+1)*h]
				for y, v := range col {
					pix[3*(y*w+x)+c] = v
				}
			}
		}
	case greyRowMajor:
		for k, v := range rec[:w*h] {
			pix[3*k], pix[3*k+1], pix[3*k+2] = v, v, v
		}
	}
	return img, nil
}
