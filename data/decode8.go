package data

import (
	"errors"
	"fmt"
	"image/color"
	"sync"

	"github.com/simclr-go/simclr/augment"
)

// SourceDataset is implemented by datasets that can hand out an image in
// the form that holds it exactly at the least cost: interleaved 8-bit
// (*augment.Image8) when its values are bytes, as for JPEGs, 8-bit PNGs
// and every record format, and float (*augment.Image) otherwise (16-bit or
// paletted PNG, CMYK JPEG, ...), decoding it once either way. Loaders use
// it instead of Image when a dataset has it: a transform reads either form
// (see Transform), and from bytes only the pixels under a crop are ever
// converted to float32. Both forms give the same views.
type SourceDataset interface {
	Source(i int) (augment.Source, error)
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
	src, err := decodeSource(b, false)
	if err != nil {
		return nil, err
	}
	return src.(*augment.Image8), nil
}

// DecodeSource decodes an encoded image, once, into the form that holds
// it exactly at the least cost: like DecodeImage8 where 8 bits hold it,
// else like DecodeImage. Pass an *augment.Image8 result to ReleaseImage8
// when done with it.
func DecodeSource(b []byte) (augment.Source, error) { return decodeSource(b, true) }

// decodeSource is DecodeSource, or DecodeImage8 when float is false: then
// an image that 8 bits cannot hold is ErrNot8Bit, found from its header
// alone where that tells.
func decodeSource(b []byte, float bool) (augment.Source, error) {
	if isJPEG(b) {
		if img, ok, err := decodeJPEGNative8(b); ok {
			if err != nil {
				return nil, err
			}
			return img, nil
		}
	}
	cfg, format, err := decodeHeader(b)
	if err != nil {
		return nil, err
	}
	var exact bool // FromImage8 takes the decoder's output
	switch cfg.ColorModel {
	case color.YCbCrModel, color.RGBAModel, color.NRGBAModel, color.GrayModel:
		exact = true
	}
	if !exact && !float {
		return nil, fmt.Errorf("%s: %w", format, ErrNot8Bit)
	}
	m, err := decodeBody(b, format)
	if err != nil {
		return nil, err
	}
	if exact {
		img := newPooledImage8(1, 1)
		if augment.FromImage8(img, m) {
			return img, nil
		}
		ReleaseImage8(img)
		if !float {
			return nil, fmt.Errorf("%s (%T): %w", format, m, ErrNot8Bit)
		}
	}
	return augment.FromImage(m)
}

// DecodeSourceFile reads and decodes one image file with DecodeSource.
func DecodeSourceFile(path string) (augment.Source, error) { return decodeFile(path, DecodeSource) }

func (d *folderDataset) Source(i int) (augment.Source, error) {
	if err := checkIndex("folder:"+d.root, i, len(d.paths)); err != nil {
		return nil, err
	}
	return DecodeSourceFile(d.paths[i])
}

// pooled8 marks datasets whose Source results are fresh buffers the loader
// may recycle with ReleaseImage8.
func (d *folderDataset) pooled8() {}
func (d *recordDataset) pooled8() {}

// Source returns record i as interleaved bytes (records are 8-bit).
func (d *recordDataset) Source(i int) (augment.Source, error) {
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
