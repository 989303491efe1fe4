package data

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/augment"
)

// testJPEG encodes a w x h image with image/jpeg: smooth colour fields (so
// that chroma upsampling filters agree) plus luma noise; grey if grey.
func testJPEG(t testing.TB, rng *rand.Rand, w, h, quality int, grey bool) []byte {
	t.Helper()
	var m image.Image
	p := [6]float64{rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64() * 6, rng.Float64() * 6, rng.Float64() * 6}
	field := func(x, y int, c int) float64 {
		// Gentle chroma slopes: image/jpeg upsamples 4:2:0 chroma by
		// replication, libjpeg by a triangle filter; they agree on smooth chroma.
		u, v := float64(x)/200, float64(y)/200
		return 128 + 90*math.Sin(p[3+c]*u+p[c]*7)*math.Cos(p[(c+1)%3+3]*v+p[c])
	}
	if grey {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				g.SetGray(x, y, color.Gray{clampU8(field(x, y, 0) + rng.NormFloat64()*8)})
			}
		}
		m = g
	} else {
		c := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				n := rng.NormFloat64() * 8
				c.SetNRGBA(x, y, color.NRGBA{clampU8(field(x, y, 0) + n), clampU8(field(x, y, 1) + n), clampU8(field(x, y, 2) + n), 255})
			}
		}
		m = c
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func clampU8(v float64) uint8 { return uint8(math.Round(math.Max(0, math.Min(255, v)))) }

// pixelDiff returns the largest and mean absolute difference in 8-bit levels.
func pixelDiff(t *testing.T, got, want *augment.Image) (maxd, mean float64) {
	t.Helper()
	if got.W != want.W || got.H != want.H || len(got.Pix) != len(want.Pix) {
		t.Fatalf("size %dx%d, want %dx%d", got.W, got.H, want.W, want.H)
	}
	for i, v := range got.Pix {
		d := math.Abs(float64(v-want.Pix[i])) * 255
		maxd = max(maxd, d)
		mean += d
	}
	return maxd, mean / float64(len(got.Pix))
}

// TestDecodeJPEGMatchesImageJPEG: the oracle is image/jpeg + augment.FromImage.
// Both decoders use the same integer IDCT precision class but different
// rounding and chroma upsampling, hence the tolerance.
func TestDecodeJPEGMatchesImageJPEG(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	sizes := [][2]int{{1, 1}, {7, 5}, {16, 16}, {33, 17}, {17, 40}, {120, 90}}
	if !testing.Short() {
		sizes = append(sizes, [2]int{500, 375})
	}
	for _, sz := range sizes {
		for _, q := range []int{50, 90, 100} {
			for _, grey := range []bool{false, true} {
				name := fmt.Sprintf("%dx%d/q%d/grey=%v", sz[0], sz[1], q, grey)
				b := testJPEG(t, rng, sz[0], sz[1], q, grey)
				got, err := DecodeImage(b)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				want, err := decodeGo(b)
				if err != nil {
					t.Fatalf("%s: image/jpeg: %v", name, err)
				}
				maxd, mean := pixelDiff(t, got, want)
				// Grey: IDCT rounding only. Colour: the upsampling
				// filters differ most where coarse quantisation
				// leaves chroma steps at block edges.
				tol := 2.0
				if !grey {
					tol = map[bool]float64{true: 8, false: 4}[q < 90]
				}
				if maxd > tol || mean >= 1 {
					t.Errorf("%s: differs from image/jpeg by max %.0f, mean %.2f levels", name, maxd, mean)
				}
			}
		}
	}
}

// TestDecodeJPEGMatchesPIL compares with PIL's decoding (libjpeg-turbo, what
// torchvision sees) of fixtures in encodings image/jpeg cannot write:
// progressive, 4:4:4, 4:2:2, with sharp chroma edges. With libjpeg they are
// equal; image/jpeg (nearest-neighbour chroma) is only close on average.
func TestDecodeJPEGMatchesPIL(t *testing.T) {
	for _, name := range []string{"prog420", "prog444", "base444", "base422", "proggrey"} {
		b, err := os.ReadFile(filepath.Join("testdata", "jpeg", name+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeImage(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := DecodeImageFile(filepath.Join("testdata", "jpeg", name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		maxd, mean := pixelDiff(t, got, want)
		t.Logf("%s: max %.0f mean %.3f levels from PIL (native %v)", name, maxd, mean, nativeJPEG)
		if nativeJPEG && maxd > 1 {
			t.Errorf("%s: libjpeg decode differs from PIL's by max %.0f levels, mean %.3f", name, maxd, mean)
		}
		if !nativeJPEG && (name == "prog444" || name == "base444" || name == "proggrey") && (maxd > 3 || mean >= 1) {
			t.Errorf("%s: image/jpeg decode differs from PIL's by max %.0f levels, mean %.3f", name, maxd, mean)
		}
	}
}

// CMYK JPEGs are left to image/jpeg.
func TestDecodeJPEGCMYKFallsBack(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "jpeg", "cmyk.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeImage(b)
	if err != nil {
		t.Fatal(err)
	}
	want, err := decodeGo(b)
	if err != nil {
		t.Fatal(err)
	}
	if maxd, _ := pixelDiff(t, got, want); maxd != 0 {
		t.Errorf("CMYK decode differs from image/jpeg by %.0f levels", maxd)
	}
}

func TestDecodeJPEGCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	good := testJPEG(t, rng, 64, 48, 90, false)
	prog, err := os.ReadFile(filepath.Join("testdata", "jpeg", "prog420.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"soi-only", []byte{0xFF, 0xD8, 0xFF}, "jpeg"},
		{"garbage", []byte("\xff\xd8\xff\xe0 definitely not a jpeg"), "jpeg"},
		{"header-cut", good[:40], "jpeg"},
		{"data-cut", good[:len(good)/2], "jpeg"},
		{"data-cut-late", good[:len(good)-40], "jpeg"},
		{"prog-cut", prog[:len(prog)*2/3], "jpeg"},
		{"zero-width", zeroSOFWidth(t, good), "jpeg"},
	} {
		path := filepath.Join(dir, tc.name+".jpg")
		writeFile(t, path, tc.b)
		_, err := DecodeImageFile(path)
		wantErr(t, err, path, tc.want)
		t.Logf("%s: %v", tc.name, err)
	}
	// Random damage: an image or an error, never a crash.
	n := 300
	if testing.Short() {
		n = 60
	}
	for i := range n {
		b := bytes.Clone(good)
		for range 1 + i%4 {
			b[2+rng.IntN(len(b)-2)] = byte(rng.Uint32())
		}
		if i%3 == 0 {
			b = b[:2+rng.IntN(len(b)-2)]
		}
		img, err := DecodeImage(b)
		if err == nil && (img.W != 64 || img.H != 48) && img.Validate() != nil {
			t.Fatalf("damaged %d: invalid image %dx%d", i, img.W, img.H)
		}
	}
}

// zeroSOFWidth returns b with the SOF0 frame width set to 0.
func zeroSOFWidth(t *testing.T, b []byte) []byte {
	b = bytes.Clone(b)
	i := bytes.Index(b, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	b[i+7], b[i+8] = 0, 0 // length(2) precision(1) height(2) width(2)
	return b
}

// Concurrent decodes share no state.
func TestDecodeJPEGConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	blobs := [][]byte{testJPEG(t, rng, 50, 40, 90, false), testJPEG(t, rng, 31, 29, 70, true)}
	var wants []*augment.Image
	for _, b := range blobs {
		w, err := DecodeImage(b)
		if err != nil {
			t.Fatal(err)
		}
		wants = append(wants, w)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				k := (g + i) % 2
				img, err := DecodeImage(blobs[k])
				if err == nil && !slices.Equal(img.Pix, wants[k].Pix) {
					err = fmt.Errorf("goroutine %d: decode %d differs", g, i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func ExampleDecodeImage() {
	var buf bytes.Buffer
	m := image.NewGray(image.Rect(0, 0, 4, 2))
	png.Encode(&buf, m)
	img, err := DecodeImage(buf.Bytes())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(img.W, img.H, len(img.Pix))
	// Output: 4 2 24
}
