package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeGz writes b gzipped to path.
func writeGz(t *testing.T, path string, b []byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	writeFile(t, path, buf.Bytes())
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cifarRecords makes n random records with labelBytes label bytes, labels
// drawn below numClasses; it returns the file bytes and the labels used (the
// last label byte).
func cifarRecords(rng *rand.Rand, n, labelBytes, numClasses int) ([]byte, []int) {
	rl := labelBytes + 3072
	b := make([]byte, n*rl)
	labels := make([]int, n)
	for r := range n {
		rec := b[r*rl : (r+1)*rl]
		for k := range rec {
			rec[k] = byte(rng.UintN(256))
		}
		for k := range labelBytes {
			rec[k] = byte(rng.IntN(numClasses))
		}
		labels[r] = int(rec[labelBytes-1])
	}
	return b, labels
}

// checkCIFARImage compares image i of ds with record rec, using the byte
// offsets of the CIFAR format description: pixel (y,x) of channel c is at
// labelBytes + c*1024 + y*32 + x.
func checkCIFARImage(t *testing.T, ds Dataset, i int, rec []byte, labelBytes int) {
	t.Helper()
	img, err := ds.Image(i)
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 32 || img.H != 32 || len(img.Pix) != 3*32*32 {
		t.Fatalf("image %d: %dx%d, %d values", i, img.W, img.H, len(img.Pix))
	}
	for c := range 3 {
		for y := range 32 {
			for x := range 32 {
				want := float32(rec[labelBytes+c*1024+y*32+x]) / 255
				if got := img.Pix[(c*32+y)*32+x]; got != want {
					t.Fatalf("image %d c%d (%d,%d) = %v, want %v", i, c, y, x, got, want)
				}
			}
		}
	}
}

func TestCIFAR10FolderAndGzip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	var all []byte
	var labels []int
	for b := 1; b <= 5; b++ {
		recs, labs := cifarRecords(rng, 3, 1, 10)
		all, labels = append(all, recs...), append(labels, labs...)
		name := filepath.Join(dir, "cifar-10-batches-bin", "data_batch_"+string(rune('0'+b))+".bin")
		if b%2 == 0 { // mix plain and gzipped batches
			writeGz(t, name+".gz", recs)
		} else {
			writeFile(t, name, recs)
		}
	}
	test, testLabels := cifarRecords(rng, 4, 1, 10)
	writeGz(t, filepath.Join(dir, "cifar-10-batches-bin", "test_batch.bin.gz"), test)

	ds, err := Open("cifar10:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 15 || ds.NumClasses() != 10 || ds.ClassNames()[9] != "truck" {
		t.Fatalf("Len %d NumClasses %d", ds.Len(), ds.NumClasses())
	}
	for i := range 15 {
		if ds.Label(i) != labels[i] {
			t.Fatalf("label %d = %d, want %d", i, ds.Label(i), labels[i])
		}
		checkCIFARImage(t, ds, i, all[i*3073:(i+1)*3073], 1)
	}
	if got := ds.Name(7); got != "cifar10:train#7" {
		t.Errorf("Name(7) = %q", got)
	}
	if _, err := ds.Image(15); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("Image(15): %v", err)
	}

	ts, err := Open("cifar10:" + dir + "@test")
	if err != nil {
		t.Fatal(err)
	}
	if ts.Len() != 4 || ts.Label(3) != testLabels[3] {
		t.Fatalf("test split: Len %d", ts.Len())
	}
	checkCIFARImage(t, ts, 2, test[2*3073:3*3073], 1)

	// A single batch file works too.
	one, err := Open("cifar10:" + filepath.Join(dir, "cifar-10-batches-bin", "data_batch_1.bin"))
	if err != nil || one.Len() != 3 {
		t.Fatalf("single file: %v", err)
	}
}

func tarGz(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"README", "data_batch_2.bin", "data_batch_1.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin", "train.bin", "test.bin"} {
		b, ok := files[name]
		if !ok {
			continue
		}
		dir := "cifar-10-batches-bin/"
		if name == "train.bin" || name == "test.bin" {
			dir = "cifar-100-binary/"
		}
		tw.WriteHeader(&tar.Header{Name: dir + name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	tw.Close()
	zw.Close()
	writeFile(t, path, buf.Bytes())
}

func TestCIFAR10Archive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	files := map[string][]byte{"README": []byte("hello")}
	var train []byte
	var labels []int
	for b := 1; b <= 5; b++ {
		recs, labs := cifarRecords(rng, 2, 1, 10)
		files["data_batch_"+string(rune('0'+b))+".bin"] = recs
		train, labels = append(train, recs...), append(labels, labs...)
	}
	files["test_batch.bin"], _ = cifarRecords(rng, 3, 1, 10)
	path := filepath.Join(t.TempDir(), "cifar-10-binary.tar.gz")
	tarGz(t, path, files)

	ds, err := Open("cifar10:" + path) // batches stored out of order in the archive
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 10 {
		t.Fatalf("Len %d", ds.Len())
	}
	for i := range 10 {
		if ds.Label(i) != labels[i] {
			t.Fatalf("label %d", i)
		}
		checkCIFARImage(t, ds, i, train[i*3073:(i+1)*3073], 1)
	}
	ts, err := Open("cifar10:" + path + "@test")
	if err != nil || ts.Len() != 3 {
		t.Fatalf("test split of archive: %v", err)
	}

	delete(files, "data_batch_4.bin")
	tarGz(t, path, files)
	if _, err := Open("cifar10:" + path); err == nil || !strings.Contains(err.Error(), "no data_batch_4.bin") {
		t.Errorf("archive without batch 4: %v", err)
	}
	// Cut the archive short: a clear error, not a panic.
	full, _ := os.ReadFile(path)
	writeFile(t, path, full[:len(full)/2])
	if _, err := Open("cifar10:" + path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("truncated archive: %v", err)
	}
}

func TestCIFAR100(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	train, _ := cifarRecords(rng, 6, 2, 20) // coarse (<20) and fine labels
	for r := range 6 {
		train[r*3074+1] = byte(50 + 9*r) // fine labels up to 95
	}
	writeFile(t, filepath.Join(dir, "train.bin"), train)
	test, _ := cifarRecords(rng, 2, 2, 20)
	writeFile(t, filepath.Join(dir, "test.bin"), test)

	ds, err := Open("cifar100:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 6 || ds.NumClasses() != 100 || len(ds.ClassNames()) != 100 {
		t.Fatalf("Len %d NumClasses %d names %d", ds.Len(), ds.NumClasses(), len(ds.ClassNames()))
	}
	names := ds.ClassNames()
	if names[0] != "apple" || names[99] != "worm" {
		t.Errorf("class names %q..%q", names[0], names[99])
	}
	for i := range names[1:] {
		if names[i] >= names[i+1] {
			t.Errorf("CIFAR-100 fine label names not in sorted order at %d: %q %q", i, names[i], names[i+1])
		}
	}
	for r := range 6 {
		if ds.Label(r) != 50+9*r {
			t.Errorf("label %d = %d, want the fine label %d", r, ds.Label(r), 50+9*r)
		}
		checkCIFARImage(t, ds, r, train[r*3074:(r+1)*3074], 2)
	}
	path := filepath.Join(t.TempDir(), "cifar-100-binary.tar.gz")
	tarGz(t, path, map[string][]byte{"train.bin": train, "test.bin": test})
	ts, err := Open("cifar100:" + path + "@test")
	if err != nil || ts.Len() != 2 {
		t.Fatalf("cifar100 archive test split: %v", err)
	}
	checkCIFARImage(t, ts, 1, test[3074:], 2)
}

func TestCIFARBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	recs, _ := cifarRecords(rng, 2, 1, 10)
	dir := t.TempDir()
	for b := 1; b <= 5; b++ {
		writeFile(t, filepath.Join(dir, "data_batch_"+string(rune('0'+b))+".bin"), recs)
	}
	bad := filepath.Join(dir, "data_batch_3.bin")

	writeFile(t, bad, recs[:len(recs)-100]) // truncated
	_, err := Open("cifar10:" + dir)
	wantErr(t, err, bad, "not a whole number of 3073-byte records")

	writeGz(t, bad+".gz", recs)
	os.Remove(bad)
	gz, _ := os.ReadFile(bad + ".gz")
	writeFile(t, bad+".gz", gz[:len(gz)-30]) // truncated gzip stream
	_, err = Open("cifar10:" + dir)
	wantErr(t, err, bad+".gz", "gzip")

	bl := append([]byte(nil), recs...)
	bl[3073] = 200 // label of record 1 out of range
	writeFile(t, bad+".gz", nil)
	os.Remove(bad + ".gz")
	writeFile(t, bad, bl)
	_, err = Open("cifar10:" + dir)
	wantErr(t, err, bad, "record 1 has label 200")

	writeFile(t, bad, nil)
	_, err = Open("cifar10:" + dir)
	wantErr(t, err, bad, "empty")

	os.Remove(bad)
	_, err = Open("cifar10:" + dir)
	wantErr(t, err, dir, "no data_batch_3.bin(.gz) found", "download the CIFAR-10 binary version")

	_, err = Open("cifar10:" + filepath.Join(dir, "nope"))
	wantErr(t, err, "nope", "does not exist", "cifar-10-binary.tar.gz")
	_, err = Open("cifar100:" + dir)
	wantErr(t, err, "no train.bin(.gz) found", "CIFAR-100")
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

// stlImage makes a random 96x96 RGB image img[c][y][x] and its STL-10
// record: each channel stored column by column (MATLAB order), i.e. pixel
// (y,x) of channel c at c*9216 + x*96 + y.
func stlImage(rng *rand.Rand) (img [3][96][96]byte, rec []byte) {
	rec = make([]byte, 3*96*96)
	for c := range 3 {
		for y := range 96 {
			for x := range 96 {
				v := byte(rng.UintN(256))
				img[c][y][x] = v
				rec[c*9216+x*96+y] = v
			}
		}
	}
	return img, rec
}

func TestSTL10(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	dir := t.TempDir()
	bin := filepath.Join(dir, "stl10_binary")
	var imgs [][3][96][96]byte
	var x []byte
	for range 4 {
		im, rec := stlImage(rng)
		imgs = append(imgs, im)
		x = append(x, rec...)
	}
	writeFile(t, filepath.Join(bin, "train_X.bin"), x)
	writeFile(t, filepath.Join(bin, "train_y.bin"), []byte{1, 10, 3, 7})
	writeGz(t, filepath.Join(bin, "test_X.bin.gz"), x[:2*27648])
	writeGz(t, filepath.Join(bin, "test_y.bin.gz"), []byte{2, 2})
	writeFile(t, filepath.Join(bin, "unlabeled_X.bin"), x[27648:])

	check := func(ds Dataset, i int, im [3][96][96]byte) {
		t.Helper()
		got, err := ds.Image(i)
		if err != nil {
			t.Fatal(err)
		}
		if got.W != 96 || got.H != 96 {
			t.Fatalf("size %dx%d", got.W, got.H)
		}
		for c := range 3 {
			for y := range 96 {
				for xx := range 96 {
					if g, w := got.Pix[(c*96+y)*96+xx], float32(im[c][y][xx])/255; g != w {
						t.Fatalf("image %d c%d (y=%d,x=%d) = %v want %v", i, c, y, xx, g, w)
					}
				}
			}
		}
	}
	ds, err := Open("stl10:" + dir) // the parent of stl10_binary works
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 4 || ds.NumClasses() != 10 || ds.ClassNames()[7] != "monkey" {
		t.Fatalf("Len %d", ds.Len())
	}
	for i, want := range []int{0, 9, 2, 6} {
		if ds.Label(i) != want {
			t.Errorf("label %d = %d want %d", i, ds.Label(i), want)
		}
		check(ds, i, imgs[i])
	}
	if c, ok := ds.(interface{ Close() error }); !ok || c.Close() != nil {
		t.Error("STL-10 dataset read from a plain file should be closable")
	}

	ts, err := Open("stl10:" + bin + "@test")
	if err != nil || ts.Len() != 2 || ts.Label(1) != 1 {
		t.Fatalf("test split: %v", err)
	}
	check(ts, 1, imgs[1])

	un, err := Open("stl10:" + bin + "@unlabeled")
	if err != nil || un.Len() != 3 || un.Label(0) != -1 || un.NumClasses() != 0 || un.ClassNames() != nil {
		t.Fatalf("unlabeled split: %v", err)
	}
	check(un, 2, imgs[3])
	if un.Name(2) != "stl10:unlabeled#2" {
		t.Errorf("name %q", un.Name(2))
	}

	// Bad input.
	writeFile(t, filepath.Join(bin, "train_y.bin"), []byte{1, 10, 3})
	_, err = Open("stl10:" + bin)
	wantErr(t, err, "train_y.bin has 3 labels but", "train_X.bin has 4 images")
	writeFile(t, filepath.Join(bin, "train_y.bin"), []byte{1, 10, 0, 3})
	_, err = Open("stl10:" + bin)
	wantErr(t, err, "train_y.bin", "label 0 of image 2")
	writeFile(t, filepath.Join(bin, "train_X.bin"), x[:len(x)-5])
	_, err = Open("stl10:" + bin)
	wantErr(t, err, "train_X.bin", "not a whole number of 27648-byte")
	os.Remove(filepath.Join(bin, "train_y.bin"))
	writeFile(t, filepath.Join(bin, "train_X.bin"), x)
	_, err = Open("stl10:" + bin)
	wantErr(t, err, "no train_y.bin(.gz) found")
	_, err = Open("stl10:" + t.TempDir() + "@unlabeled")
	wantErr(t, err, "no unlabeled_X.bin(.gz) found", "stl10_binary.tar.gz")
	_, err = Open("stl10:/x/stl10_binary.tar.gz")
	wantErr(t, err, "extract it")
}
