package data

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

var stl10Classes = []string{"airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"}

const (
	stl10Side  = 96
	stl10Bytes = 3 * stl10Side * stl10Side
	stl10Hint  = "download the STL-10 binary version (stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/), extract it and give the stl10_binary folder"
)

// openSTL10 reads an STL-10 split. Uncompressed image files are read on
// demand (the unlabeled split is 2.6 GiB); gzipped ones are held in memory.
func openSTL10(dir, split string) (Dataset, error) {
	if split == "" {
		split = "train"
	}
	low := strings.ToLower(dir)
	if strings.HasSuffix(low, ".tar.gz") || strings.HasSuffix(low, ".tgz") || strings.HasSuffix(low, ".tar") {
		return nil, fmt.Errorf("stl10: %s: reading the archive directly is not supported (it would need 2.6 GiB of memory); extract it (tar xzf) and give the stl10_binary folder", dir)
	}
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("stl10: %s does not exist; %s", dir, stl10Hint)
		}
		return nil, fmt.Errorf("stl10: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("stl10: %s is not a folder; give the stl10_binary folder holding %s_X.bin", dir, split)
	}
	dirs := []string{dir, filepath.Join(dir, "stl10_binary")}
	xPath := findFile(dirs, split+"_X.bin", split+"_X.bin.gz")
	if xPath == "" {
		return nil, fmt.Errorf("stl10: %s: no %s_X.bin(.gz) found; %s", dir, split, stl10Hint)
	}
	d := &recordDataset{prefix: "stl10:" + split, w: stl10Side, h: stl10Side, layout: planarColMajor, classes: stl10Classes}
	if err := readSTLImages(d, xPath); err != nil {
		return nil, err
	}
	if split == "unlabeled" {
		return d, nil
	}
	yPath := findFile(dirs, split+"_y.bin", split+"_y.bin.gz")
	if yPath == "" {
		d.Close()
		return nil, fmt.Errorf("stl10: %s: no %s_y.bin(.gz) found next to %s; %s", dir, split, xPath, stl10Hint)
	}
	y, err := readMaybeGzip(yPath)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("stl10: %s: %w", yPath, err)
	}
	if len(y) != d.n {
		d.Close()
		return nil, fmt.Errorf("stl10: %s has %d labels but %s has %d images: truncated or mismatched files", yPath, len(y), xPath, d.n)
	}
	d.labels = make([]int16, len(y))
	for i, b := range y {
		if b < 1 || b > 10 {
			d.Close()
			return nil, fmt.Errorf("stl10: %s: label %d of image %d, want 1..10: not an STL-10 label file", yPath, b, i)
		}
		d.labels[i] = int16(b) - 1
	}
	return d, nil
}

func readSTLImages(d *recordDataset, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("stl10: %w", err)
	}
	magic := make([]byte, 2)
	n, _ := f.ReadAt(magic, 0)
	if n == 2 && bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		defer f.Close()
		b, err := readAllMaybeGzip(bufio.NewReader(f))
		if err != nil {
			return fmt.Errorf("stl10: %s: %w", path, err)
		}
		if err := checkSTLSize(path, int64(len(b))); err != nil {
			return err
		}
		d.pix, d.n = b, len(b)/stl10Bytes
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stl10: %w", err)
	}
	if err := checkSTLSize(path, st.Size()); err != nil {
		f.Close()
		return err
	}
	d.file, d.n = f, int(st.Size()/stl10Bytes)
	return nil
}

func checkSTLSize(path string, size int64) error {
	if size == 0 {
		return fmt.Errorf("stl10: %s: empty file", path)
	}
	if size%stl10Bytes != 0 {
		return fmt.Errorf("stl10: %s: %d bytes is not a whole number of %d-byte 96x96x3 images (%d images and %d bytes over): truncated or not an STL-10 file",
			path, size, stl10Bytes, size/stl10Bytes, size%stl10Bytes)
	}
	return nil
}
