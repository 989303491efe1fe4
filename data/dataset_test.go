package data

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for _, c := range []struct{ spec, kind, path, split string }{
		{"cifar10:/d/cifar", "cifar10", "/d/cifar", ""},
		{"cifar10:/d/cifar@test", "cifar10", "/d/cifar", "test"},
		{"fashion-mnist", "fashion-mnist", "", ""},
		{"fashion-mnist@test", "fashion-mnist", "", "test"},
		{"folder:/photos/me@home/x", "folder", "/photos/me@home/x", ""}, // '@' inside the path
		{"STL10:rel/dir@unlabeled", "stl10", "rel/dir", "unlabeled"},
	} {
		k, p, s, err := ParseSpec(c.spec)
		if err != nil || k != c.kind || p != c.path || s != c.split {
			t.Errorf("ParseSpec(%q) = %q %q %q %v, want %q %q %q", c.spec, k, p, s, err, c.kind, c.path, c.split)
		}
	}
}

func TestOpenBadSpecs(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		spec  string
		parts []string
	}{
		{"", []string{"empty dataset spec", "cifar10"}},
		{"imagenet:/x", []string{`unknown dataset kind "imagenet"`, "folder"}},
		{dir, []string{"unknown dataset kind", "folder:" + dir}},
		{"cifar10", []string{"has no path", "cifar10:PATH"}},
		{"cifar10:" + dir + "@valid", []string{`unknown split "valid"`, "train, test"}},
		{"folder:" + dir + "@train", []string{"folder has no splits"}},
		{"fashion-mnist@train", []string{"only the test split", "dataset-fashion-mnist"}},
		{"stl10:" + dir, []string{"no train_X.bin(.gz) found"}},
		{"fashion-mnist:" + dir, []string{"no train-images-idx3-ubyte(.gz)", "apt-get install dataset-fashion-mnist"}},
		{"mnist:" + dir + "/none@test", []string{"does not exist", "t10k-images-idx3-ubyte"}},
	} {
		ds, err := Open(c.spec)
		if err == nil {
			t.Errorf("Open(%q) = %v, want an error", c.spec, ds)
			continue
		}
		for _, p := range c.parts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("Open(%q) error %q lacks %q", c.spec, err, p)
			}
		}
	}
}

// The embedded default: checked against the figures published in
// shared/data/README.md (sha256 of the decompressed files, counts, first
// labels).
func TestEmbeddedFashionMNIST(t *testing.T) {
	for name, b := range map[string][]byte{
		"5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b": fashionImagesGz,
		"0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34": fashionLabelsGz,
	} {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, zr)
		if got := hex.EncodeToString(h.Sum(nil)); got != name {
			t.Errorf("embedded file sha256 %s, want %s", got, name)
		}
	}
	for _, spec := range []string{DefaultSpec, "fashion-mnist@test"} {
		ds, err := Open(spec)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Len() != 10000 || ds.NumClasses() != 10 || ds.ClassNames()[9] != "Ankle boot" {
			t.Fatalf("%s: Len %d NumClasses %d", spec, ds.Len(), ds.NumClasses())
		}
		for i, want := range []int{9, 2, 1, 1, 6, 1, 4, 6, 5, 7} {
			if ds.Label(i) != want {
				t.Errorf("label %d = %d want %d", i, ds.Label(i), want)
			}
		}
		counts := make([]int, 10)
		for i := range ds.Len() {
			counts[ds.Label(i)]++
		}
		for c, n := range counts {
			if n != 1000 {
				t.Errorf("class %d has %d images, want 1000", c, n)
			}
		}
		img, err := ds.Image(0)
		if err != nil {
			t.Fatal(err)
		}
		// Grey replicated into 3 channels, equal to the raw idx bytes.
		raw := embeddedRaw(t)
		if img.W != 28 || img.H != 28 {
			t.Fatalf("size %dx%d", img.W, img.H)
		}
		for k := range 784 {
			want := float32(raw[16+k]) / 255
			if img.Pix[k] != want || img.Pix[784+k] != want || img.Pix[2*784+k] != want {
				t.Fatalf("pixel %d: %v %v %v want %v", k, img.Pix[k], img.Pix[784+k], img.Pix[1568+k], want)
			}
		}
		if ds.Name(3) != "fashion-mnist:test#3" {
			t.Errorf("name %q", ds.Name(3))
		}
	}
}

func embeddedRaw(t *testing.T) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(fashionImagesGz))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func idxFiles(n, rows, cols int, labels []byte) (img, lab []byte) {
	img = binary.BigEndian.AppendUint32(nil, 2051)
	for _, v := range []int{n, rows, cols} {
		img = binary.BigEndian.AppendUint32(img, uint32(v))
	}
	for k := range n * rows * cols {
		img = append(img, byte(k*7))
	}
	lab = binary.BigEndian.AppendUint32(nil, 2049)
	lab = binary.BigEndian.AppendUint32(lab, uint32(len(labels)))
	return img, append(lab, labels...)
}

func TestIdxFromDisk(t *testing.T) {
	dir := t.TempDir()
	img, lab := idxFiles(3, 2, 5, []byte{4, 0, 9})
	writeGz(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), img)
	writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), lab)
	ds, err := Open("fashion-mnist:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 3 || ds.Label(2) != 9 || ds.Name(1) != "fashion-mnist:train#1" {
		t.Fatalf("Len %d label %d name %s", ds.Len(), ds.Label(2), ds.Name(1))
	}
	im, _ := ds.Image(1)
	if im.W != 5 || im.H != 2 || im.Pix[3] != float32(byte((10+3)*7))/255 || im.Pix[20+3] != im.Pix[3] {
		t.Errorf("image 1: %dx%d pix %v", im.W, im.H, im.Pix[3])
	}

	writeGz(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), img[:len(img)-1])
	_, err = Open("mnist:" + dir)
	wantErr(t, err, "train-images-idx3-ubyte.gz", "truncated")
	writeGz(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), img)
	writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), lab[:len(lab)-1])
	_, err = Open("mnist:" + dir)
	wantErr(t, err, "train-labels-idx1-ubyte", "labels")
	writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), img)
	_, err = Open("mnist:" + dir)
	wantErr(t, err, "not an idx1 label file")
}

// writePNG encodes m as PNG at path.
func writePNG(t *testing.T, path string, m image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.Bytes())
}

func TestFolderClassesAndColourModels(t *testing.T) {
	root := t.TempDir()
	// Classes out of creation order, a nested file, a hidden folder and a
	// non-image file, which are ignored.
	grey := image.NewGray(image.Rect(0, 0, 3, 2))
	grey.Pix = []byte{0, 51, 102, 153, 204, 255}
	writePNG(t, filepath.Join(root, "zebra", "g.png"), grey)

	pal := image.NewPaletted(image.Rect(0, 0, 2, 2), palette.Plan9)
	pal.Pix = []byte{0, 17, 200, 255}
	writePNG(t, filepath.Join(root, "ant", "sub", "p.PNG"), pal)

	// Non-premultiplied colour with alpha: PIL's convert("RGB") keeps the
	// colour and drops alpha.
	rgba := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	rgba.Pix = []byte{200, 100, 50, 128, 10, 20, 30, 255}
	writePNG(t, filepath.Join(root, "ant", "a.png"), rgba)

	g16 := image.NewGray16(image.Rect(0, 0, 1, 1))
	g16.SetGray16(0, 0, color.Gray16{Y: 0x8080})
	writePNG(t, filepath.Join(root, "moth", "g16.png"), g16)

	photo := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for y := range 16 {
		for x := range 16 {
			photo.Set(x, y, color.RGBA{uint8(4 * x), uint8(4 * y), 128, 255})
		}
	}
	var jb bytes.Buffer
	jpeg.Encode(&jb, photo, &jpeg.Options{Quality: 100})
	writeFile(t, filepath.Join(root, "moth", "photo.jpg"), jb.Bytes())
	writeFile(t, filepath.Join(root, "moth", "notes.txt"), []byte("not an image"))
	writePNG(t, filepath.Join(root, ".cache", "x.png"), grey)

	ds, err := Open("folder:" + root)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ds.ClassNames(), ","); got != "ant,moth,zebra" || ds.NumClasses() != 3 {
		t.Fatalf("classes %q", got)
	}
	wantFiles := []string{"ant/a.png", "ant/sub/p.PNG", "moth/g16.png", "moth/photo.jpg", "zebra/g.png"}
	wantLabels := []int{0, 0, 1, 1, 2}
	if ds.Len() != len(wantFiles) {
		t.Fatalf("Len %d", ds.Len())
	}
	for i, f := range wantFiles {
		if ds.Name(i) != filepath.Join(root, f) || ds.Label(i) != wantLabels[i] {
			t.Errorf("%d: %s label %d, want %s %d", i, ds.Name(i), ds.Label(i), f, wantLabels[i])
		}
	}
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-6 }
	px := func(i, c, y, x int) float32 {
		img, err := ds.Image(i)
		if err != nil {
			t.Fatal(err)
		}
		return img.Pix[(c*img.H+y)*img.W+x]
	}
	// NRGBA: colour kept, alpha dropped.
	if !near(px(0, 0, 0, 0), 200.0/255) || !near(px(0, 1, 0, 0), 100.0/255) || !near(px(0, 2, 0, 1), 30.0/255) {
		t.Errorf("alpha PNG: %v %v %v", px(0, 0, 0, 0), px(0, 1, 0, 0), px(0, 2, 0, 1))
	}
	// Paletted: the palette's colour.
	r, g, b, _ := palette.Plan9[200].RGBA()
	if !near(px(1, 0, 1, 0), float32(r>>8)/255) || !near(px(1, 1, 1, 0), float32(g>>8)/255) || !near(px(1, 2, 1, 0), float32(b>>8)/255) {
		t.Errorf("paletted pixel: %v", px(1, 0, 1, 0))
	}
	// 16-bit grey, all channels equal.
	if v := px(2, 0, 0, 0); math.Abs(float64(v)-float64(0x8080)/65535) > 1e-6 || px(2, 2, 0, 0) != v {
		t.Errorf("grey16: %v", v)
	}
	// JPEG at quality 100 of a smooth gradient: within a few levels of the
	// source (chroma is subsampled).
	for _, yx := range [][2]int{{0, 0}, {5, 9}, {15, 15}} {
		y, x := yx[0], yx[1]
		want := [3]float64{float64(4*x) / 255, float64(4*y) / 255, 128.0 / 255}
		for c := range 3 {
			if d := math.Abs(float64(px(3, c, y, x)) - want[c]); d > 4.0/255 {
				t.Errorf("jpeg (%d,%d) c%d off by %.1f levels", y, x, c, d*255)
			}
		}
	}
	// Grey: replicated.
	for c := range 3 {
		if !near(px(4, c, 1, 1), 204.0/255) {
			t.Errorf("grey c%d = %v", c, px(4, c, 1, 1))
		}
	}
}

func TestFolderUnlabeledAndBad(t *testing.T) {
	flat := t.TempDir()
	m := image.NewGray(image.Rect(0, 0, 4, 4))
	writePNG(t, filepath.Join(flat, "b.png"), m)
	writePNG(t, filepath.Join(flat, "a.png"), m)
	writeFile(t, filepath.Join(flat, "c.jpg"), []byte("\xff\xd8\xff\xe0 definitely not a jpeg"))
	var jb bytes.Buffer
	jpeg.Encode(&jb, image.NewRGBA(image.Rect(0, 0, 64, 64)), nil)
	writeFile(t, filepath.Join(flat, "d.jpeg"), jb.Bytes()[:jb.Len()/2]) // truncated
	ds, err := Open("folder:" + flat)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 4 || ds.Label(0) != -1 || ds.NumClasses() != 0 || ds.ClassNames() != nil || ds.Name(0) != filepath.Join(flat, "a.png") {
		t.Fatalf("flat folder: Len %d label %d classes %d name %s", ds.Len(), ds.Label(0), ds.NumClasses(), ds.Name(0))
	}
	if _, err := ds.Image(1); err != nil {
		t.Fatal(err)
	}
	_, err = ds.Image(2)
	wantErr(t, err, filepath.Join(flat, "c.jpg"))
	_, err = ds.Image(3)
	wantErr(t, err, filepath.Join(flat, "d.jpeg"), "jpeg")
	os.Remove(filepath.Join(flat, "a.png"))
	_, err = ds.Image(0)
	wantErr(t, err, filepath.Join(flat, "a.png"), "no such file")

	empty := t.TempDir()
	writeFile(t, filepath.Join(empty, "readme.md"), []byte("x"))
	os.Mkdir(filepath.Join(empty, "sub"), 0o755)
	_, err = Open("folder:" + empty)
	wantErr(t, err, empty, "no image files", "readme.md")

	mixed := t.TempDir()
	writePNG(t, filepath.Join(mixed, "loose.png"), m)
	writePNG(t, filepath.Join(mixed, "cat", "c.png"), m)
	_, err = Open("folder:" + mixed)
	wantErr(t, err, "loose.png", "class sub-folders")

	emptyClass := t.TempDir()
	writePNG(t, filepath.Join(emptyClass, "cat", "c.png"), m)
	os.Mkdir(filepath.Join(emptyClass, "dog"), 0o755)
	_, err = Open("folder:" + emptyClass)
	wantErr(t, err, `class folder "dog" has no image files`)

	_, err = Open("folder:" + filepath.Join(empty, "missing"))
	wantErr(t, err, "missing", "does not exist")

	// A header claiming a huge image is refused before decoding.
	huge := image.NewGray(image.Rect(0, 0, 1, 1))
	var pb bytes.Buffer
	png.Encode(&pb, huge)
	b := pb.Bytes()
	binary.BigEndian.PutUint32(b[16:], 100000) // IHDR width
	binary.BigEndian.PutUint32(b[20:], 100000) // IHDR height
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	_, err = DecodeImage(b)
	wantErr(t, err, "over the limit")
}
