package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
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
			src, err := d.Source(i)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := src.(*augment.Image8)
			if !ok {
				t.Fatalf("layout %d: Source gave a %T, want *augment.Image8", c.layout, src)
			}
			if maxd, _ := pixelDiff(t, got.ToImage(), want); maxd != 0 {
				t.Errorf("layout %d image %d: Source differs from Image", c.layout, i)
			}
			// Image is Source converted, so check the bytes against the
			// record directly too.
			rec := d.pix[i*d.recLen() : (i+1)*d.recLen()]
			for y := range c.h {
				for x := range c.w {
					for ch := range 3 {
						var b byte
						switch c.layout {
						case planarRowMajor:
							b = rec[(ch*c.h+y)*c.w+x]
						case planarColMajor:
							b = rec[(ch*c.w+x)*c.h+y]
						case greyRowMajor:
							b = rec[y*c.w+x]
						}
						if g := got.Pix[3*(y*c.w+x)+ch]; g != b {
							t.Fatalf("layout %d image %d: pixel (%d,%d) channel %d is %d, record says %d", c.layout, i, x, y, ch, g, b)
						}
					}
				}
			}
		}
		if _, err := d.Source(d.n); err == nil {
			t.Error("Source accepted an index out of range")
		}
	}
}

var _ Transform = (*augment.Pipeline)(nil)

// floatOnly hides a dataset's Source so loaders take the float path.
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
	if _, ok := ds.(SourceDataset); !ok {
		t.Fatal("folder dataset does not implement SourceDataset")
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

// TestDecodeSourceForms: DecodeSource gives bytes for the images 8 bits
// hold and floats for the others (16-bit and paletted PNG, CMYK JPEG),
// equal to DecodeImage either way.
func TestDecodeSourceForms(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	g16 := image.NewGray16(image.Rect(0, 0, 5, 4))
	for i := range g16.Pix {
		g16.Pix[i] = uint8(rng.Uint32())
	}
	pal := image.NewPaletted(image.Rect(0, 0, 4, 3), color.Palette{color.Black, color.NRGBA{200, 10, 30, 255}})
	pal.Pix[5] = 1
	translucent := image.NewNRGBA(image.Rect(0, 0, 6, 5))
	for i := range translucent.Pix {
		translucent.Pix[i] = uint8(rng.Uint32())
	}
	cmyk, err := os.ReadFile(filepath.Join("testdata", "jpeg", "cmyk.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		b     []byte
		bytes bool
	}{
		{"jpeg", testJPEG(t, rng, 33, 21, 90, false), true},
		{"jpeg-grey", testJPEG(t, rng, 20, 17, 90, true), true},
		{"png-gray16", encodePNG(t, g16), false},
		{"png-paletted", encodePNG(t, pal), false},
		{"png-translucent", encodePNG(t, translucent), true}, // NRGBA: alpha dropped
		{"jpeg-cmyk", cmyk, false},
	} {
		want, err := DecodeImage(c.b)
		if err != nil {
			t.Fatal(c.name, err)
		}
		src, err := DecodeSource(c.b)
		if err != nil {
			t.Fatal(c.name, err)
		}
		var got *augment.Image
		switch s := src.(type) {
		case *augment.Image8:
			got = s.ToImage()
		case *augment.Image:
			got = s
		}
		if _, isBytes := src.(*augment.Image8); isBytes != c.bytes {
			t.Errorf("%s: DecodeSource gave a %T", c.name, src)
		}
		if maxd, _ := pixelDiff(t, got, want); maxd != 0 {
			t.Errorf("%s: DecodeSource differs from DecodeImage by %g", c.name, maxd)
		}
	}
	if _, err := DecodeSource([]byte("not an image")); err == nil {
		t.Error("garbage decoded without error")
	}
	bad := testJPEG(t, rng, 40, 30, 90, false)
	if src, err := DecodeSource(bad[:len(bad)/2]); err == nil || src != nil {
		t.Errorf("truncated jpeg: %v, %v; want a nil source and an error", src, err)
	}
}

// countDecodes is an image format ("simclr-count" files) whose decoder
// counts its calls and gives a translucent RGBA image: one that reaches
// the 8-bit conversion by its colour model and fails there.
var countDecodes atomic.Int64

func init() {
	const magic = "simclr-count"
	decode := func(r io.Reader) (image.Image, error) {
		countDecodes.Add(1)
		m := image.NewRGBA(image.Rect(0, 0, 3, 2))
		for i := range m.Pix {
			m.Pix[i] = uint8(40 * (i % 4))
		}
		return m, nil
	}
	config := func(r io.Reader) (image.Config, error) {
		return image.Config{ColorModel: color.RGBAModel, Width: 3, Height: 2}, nil
	}
	image.RegisterFormat("simclr-count", magic, decode, config)
}

// TestDecodeSourceDecodesOnce: an image that turns out not to fit 8 bits
// only after decoding is not decoded a second time for its float form (the
// loader used to try the 8-bit decode, then decode again as float).
func TestDecodeSourceDecodesOnce(t *testing.T) {
	b := []byte("simclr-count")
	countDecodes.Store(0)
	src, err := DecodeSource(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(*augment.Image); !ok {
		t.Fatalf("DecodeSource gave a %T for a translucent image, want *augment.Image", src)
	}
	if n := countDecodes.Load(); n != 1 {
		t.Errorf("decoded %d times, want once", n)
	}
	if _, err := DecodeImage8(b); !errors.Is(err, ErrNot8Bit) {
		t.Errorf("DecodeImage8: %v, want ErrNot8Bit", err)
	}
}

// TestLoaderDecodesOnce: the loader decodes each file once, also when the
// image turns out not to fit 8 bits only after decoding (a translucent
// premultiplied RGBA image, here from the counting format in a .png file).
func TestLoaderDecodesOnce(t *testing.T) {
	dir := t.TempDir()
	const n = 4
	for i := range n {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("%d.png", i)), []byte("simclr-count"))
	}
	ds, err := OpenFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewEvalLoader(ds, copyTF{}, n, 2)
	if err != nil {
		t.Fatal(err)
	}
	countDecodes.Store(0)
	for _, err := range l.All() {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := countDecodes.Load(); got != n {
		t.Errorf("%d images decoded %d times, want %d", n, got, n)
	}
}
