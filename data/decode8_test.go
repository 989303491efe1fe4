package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/simclr-go/simclr/augment"
)

func encodePNG(t *testing.T, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeImage8MatchesDecodeImage: the 8-bit decode of JPEGs (colour,
// grey, CMYK fallback) and PNGs equals the float decode, and images 8 bits
// cannot hold are refused with ErrNot8Bit.
func TestDecodeImage8MatchesDecodeImage(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	nrgba := image.NewNRGBA(image.Rect(0, 0, 23, 17))
	gray := image.NewGray(image.Rect(0, 0, 19, 11))
	rgb := image.NewRGBA(image.Rect(0, 0, 13, 9))
	for i := range nrgba.Pix {
		nrgba.Pix[i] = uint8(rng.Uint32())
		rgb.Pix[i%len(rgb.Pix)] = uint8(rng.Uint32()) | uint8(255*(i%4/3))
	}
	for i := range gray.Pix {
		gray.Pix[i] = uint8(rng.Uint32())
	}
	for i := 3; i < len(rgb.Pix); i += 4 {
		rgb.Pix[i] = 255
	}
	blobs := map[string][]byte{
		"jpeg-colour": testJPEG(t, rng, 61, 45, 90, false),
		"jpeg-grey":   testJPEG(t, rng, 40, 33, 85, true),
		"png-nrgba":   encodePNG(t, nrgba),
		"png-gray":    encodePNG(t, gray),
		"png-rgb":     encodePNG(t, rgb),
	}
	for name, b := range blobs {
		want, err := DecodeImage(b)
		if err != nil {
			t.Fatal(name, err)
		}
		got, err := DecodeImage8(b)
		if err != nil {
			t.Fatal(name, err)
		}
		if maxd, _ := pixelDiff(t, got.ToImage(), want); maxd != 0 {
			t.Errorf("%s: DecodeImage8 differs from DecodeImage by %g", name, maxd)
		}
		ReleaseImage8(got)
	}
	g16 := image.NewGray16(image.Rect(0, 0, 5, 5))
	g16.Pix[1] = 7
	pal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White})
	cmyk, err := os.ReadFile(filepath.Join("testdata", "jpeg", "cmyk.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"png-gray16": encodePNG(t, g16), "png-paletted": encodePNG(t, pal), "jpeg-cmyk": cmyk} {
		if _, err := DecodeImage8(b); !errors.Is(err, ErrNot8Bit) {
			t.Errorf("%s: DecodeImage8 error %v, want ErrNot8Bit", name, err)
		}
	}
	bad := blobs["jpeg-colour"]
	if _, err := DecodeImage8(bad[:len(bad)/2]); err == nil || errors.Is(err, ErrNot8Bit) {
		t.Errorf("truncated jpeg: error %v, want a decode error", err)
	}
	if _, err := DecodeImage8([]byte("not an image")); err == nil {
		t.Error("garbage decoded without error")
	}
}

// TestRecordImage8MatchesImage covers the three record layouts.
func TestRecordImage8MatchesImage(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, c := range []struct {
		layout pixelLayout
		w, h   int
	}{{planarRowMajor, 5, 4}, {planarColMajor, 6, 3}, {greyRowMajor, 7, 5}} {
		d := &recordDataset{prefix: "t", w: c.w, h: c.h, layout: c.layout, n: 3}
		d.pix = make([]byte, d.n*d.recLen())
		for i := range d.pix {
			d.pix[i] = uint8(rng.Uint32())
		}
		for i := range d.n {
			want, err := d.Image(i)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Image8(i)
			if err != nil {
				t.Fatal(err)
			}
			if maxd, _ := pixelDiff(t, got.ToImage(), want); maxd != 0 {
				t.Errorf("layout %d image %d: Image8 differs from Image", c.layout, i)
			}
		}
		if _, err := d.Image8(d.n); err == nil {
			t.Error("Image8 accepted an index out of range")
		}
	}
}

var _ Transform8 = (*augment.Pipeline)(nil)

// floatOnly hides a dataset's Image8 so loaders take the float path.
type floatOnly struct{ Dataset }

// TestLoader8MatchesFloatPath: on a folder of JPEGs and PNGs (one 16-bit,
// which falls back to the float path), the pair and eval loaders give the
// same batches through the 8-bit path as through the float path, with 1 or
// 4 workers.
func TestLoader8MatchesFloatPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	dir := t.TempDir()
	for i := range 10 {
		var b []byte
		switch {
		case i == 3:
			m := image.NewRGBA64(image.Rect(0, 0, 50, 40))
			for k := range m.Pix {
				m.Pix[k] = uint8(rng.Uint32()) | 1
			}
			b = encodePNG(t, m)
		case i%3 == 0:
			b = testJPEG(t, rng, 60+i, 50, 90, true)
		default:
			b = testJPEG(t, rng, 70, 45+i, 90, false)
		}
		ext := ".jpg"
		if i == 3 {
			ext = ".png"
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("%02d%s", i, ext)), b)
	}
	ds, err := OpenFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ds.(Dataset8); !ok {
		t.Fatal("folder dataset does not implement Dataset8")
	}
	cfg, err := augment.Preset("stl10")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Size = 24
	p, err := augment.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pairs := func(d Dataset, workers int) []float32 {
		l, err := NewPairLoader(d, p, LoaderConfig{Batch: 3, Workers: workers, Seed: 4, Shuffle: true, DropLast: true})
		if err != nil {
			t.Fatal(err)
		}
		var out []float32
		for e := range 2 {
			for b, err := range l.Epoch(e) {
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, b.Views...)
			}
		}
		l2, err := NewEvalLoader(d, p, 4, workers)
		if err != nil {
			t.Fatal(err)
		}
		for b, err := range l2.All() {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Views...)
		}
		return out
	}
	want := pairs(floatOnly{ds}, 1)
	for _, workers := range []int{1, 4} {
		got := pairs(ds, workers)
		if len(got) != len(want) {
			t.Fatalf("%d workers: %d values, want %d", workers, len(got), len(want))
		}
		var maxd float64
		for i := range got {
			maxd = max(maxd, float64(abs32(got[i]-want[i])))
		}
		if maxd > 1e-6 {
			t.Errorf("%d workers: 8-bit path differs from the float path by %g", workers, maxd)
		}
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
