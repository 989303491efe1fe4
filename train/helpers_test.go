package train

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeTinyCIFAR writes n records in the CIFAR-10 binary format to
// dir/data_batch_1.bin and returns the data spec. Images of class c share a
// colour pattern, plus noise, so a kNN classifier can tell classes apart.
func writeTinyCIFAR(t testing.TB, dir string, n int, seed uint64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	rec := make([]byte, 0, n*3073)
	for i := 0; i < n; i++ {
		c := i % 4
		rec = append(rec, byte(c))
		for ch := 0; ch < 3; ch++ {
			for y := 0; y < 32; y++ {
				for x := 0; x < 32; x++ {
					v := 40 + 50*((c+ch)%3)
					if (x/8+y/8+c)%2 == 0 {
						v += 90
					}
					v += rng.IntN(40)
					rec = append(rec, byte(v))
				}
			}
		}
	}
	path := filepath.Join(dir, "data_batch_1.bin")
	if err := os.WriteFile(path, rec, 0o644); err != nil {
		t.Fatal(err)
	}
	return "cifar10:" + path
}

// writeCIFARRecords writes n CIFAR-10 records (label i%4, pixels from the
// index) to path.
func writeCIFARRecords(t testing.TB, path string, n, salt int) {
	t.Helper()
	b := make([]byte, n*3073)
	for i := range n {
		b[i*3073] = byte(i % 4)
		for j := 1; j < 3073; j++ {
			b[i*3073+j] = byte(i*7 + j + salt)
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeClassFolder writes a labelled class folder (dir/class<c>/img<i>.png,
// size×size) made so that the class is a weak feature and each image's own
// look a strong one: class c is a faint stripe pattern (horizontal,
// vertical, diagonal or checkered, amplitude ±0.08), under a random colour
// and a bright random square (+0.5) of each image, which crops and colour
// jitter largely keep. Telling images apart (SimCLR) needs only
// the nuisance; telling classes apart (SupCon) needs the stripes. Returns
// the data spec.
func writeClassFolder(t testing.TB, dir string, classes, perClass, size int, seed uint64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	for c := range classes {
		cd := filepath.Join(dir, fmt.Sprintf("class%d", c))
		if err := os.MkdirAll(cd, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range perClass {
			img := image.NewRGBA(image.Rect(0, 0, size, size))
			var base [3]float64
			for ch := range base {
				base[ch] = 0.15 + 0.5*rng.Float64()
			}
			sq, sx, sy := size/3, rng.IntN(size-size/3), rng.IntN(size-size/3)
			for y := range size {
				for x := range size {
					var on bool
					switch c % 4 {
					case 0:
						on = (y/2)%2 == 0
					case 1:
						on = (x/2)%2 == 0
					case 2:
						on = ((x+y)/2)%2 == 0
					default:
						on = (x/2+y/2)%2 == 0
					}
					v := -0.08
					if on {
						v = 0.08
					}
					if x >= sx && x < sx+sq && y >= sy && y < sy+sq {
						v += 0.5
					}
					var px [3]uint8
					for ch := range px {
						px[ch] = uint8(255 * math.Min(1, math.Max(0, base[ch]+v)))
					}
					img.Set(x, y, color.RGBA{px[0], px[1], px[2], 255})
				}
			}
			f, err := os.Create(filepath.Join(cd, fmt.Sprintf("img%03d.png", i)))
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return "folder:" + dir
}
