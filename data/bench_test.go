package data

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/simclr-go/simclr/augment"
)

// synthCIFAR is an in-memory CIFAR-like dataset of n random 32x32 images.
func synthCIFAR(n int) *recordDataset {
	rng := rand.New(rand.NewPCG(1, 1))
	d := &recordDataset{prefix: "synth", w: 32, h: 32, layout: planarRowMajor, n: n, pix: make([]byte, n*cifarPixels), labels: make([]int16, n), classes: cifar10Format.classes}
	for i := range d.pix {
		d.pix[i] = byte(rng.Uint32())
	}
	return d
}

// copyTF is the cheapest possible transform: copy the image, so the
// benchmark measures the loader's own overhead.
type copyTF struct{}

func (copyTF) Size() int { return 32 }
func (copyTF) View(dst []float32, src augment.Source, rng *rand.Rand) error {
	copyTF{}.Eval(dst, src)
	dst[0] += rng.Float32()
	return nil
}
func (copyTF) Eval(dst []float32, src augment.Source) error {
	switch s := src.(type) {
	case *augment.Image:
		copy(dst, s.Pix)
	case *augment.Image8: // records come as bytes
		for k, v := range s.Pix {
			dst[k] = float32(v)
		}
	}
	return nil
}

func benchPairs(b *testing.B, tf Transform, workers int) {
	const batch = 256
	l, err := NewPairLoader(synthCIFAR(4096), tf, LoaderConfig{Batch: batch, Workers: workers, Seed: 1, Shuffle: true, DropLast: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	n := 0
	for e := 0; n < b.N; e++ {
		for _, err := range l.Epoch(e) {
			if err != nil {
				b.Fatal(err)
			}
			if n++; n == b.N {
				break
			}
		}
	}
	b.ReportMetric(float64(n*batch)/b.Elapsed().Seconds(), "img/s")
	b.ReportMetric(l.Stats().WaitTime.Seconds()/b.Elapsed().Seconds(), "wait-share")
}

// BenchmarkPairLoaderOverhead: loader machinery alone (copy transform).
func BenchmarkPairLoaderOverhead(b *testing.B) { benchPairs(b, copyTF{}, 0) }

// BenchmarkPairLoaderCIFARAugment: SimCLR CIFAR augmentations, 2 views an image.
func BenchmarkPairLoaderCIFARAugment(b *testing.B) {
	cfg, err := augment.Preset("cifar")
	if err != nil {
		b.Fatal(err)
	}
	p, err := augment.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	benchPairs(b, p, 0)
}

// BenchmarkDecodeJPEG: reading and decoding one 500x375 JPEG (quality 90)
// to planar float RGB, the per-image cost of a folder dataset before
// augmentation (PIL: 1656 µs, shared/reference/RESULTS.md).
func BenchmarkDecodeJPEG(b *testing.B) {
	m := image.NewRGBA(image.Rect(0, 0, 500, 375))
	rng := rand.New(rand.NewPCG(2, 2))
	for y := range 375 {
		for x := range 500 {
			n := uint8(rng.UintN(32))
			m.Set(x, y, color.RGBA{uint8(x/2) + n, uint8(y/2) + n, uint8(x+y) / 4, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "x.jpg")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := DecodeImageFile(path); err != nil {
			b.Fatal(err)
		}
	}
}
