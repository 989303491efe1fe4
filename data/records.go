package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/simclr-go/simclr/augment"
)

// pixelLayout says how one image's bytes are ordered inside a record.
type pixelLayout int

const (
	planarRowMajor pixelLayout = iota // CIFAR: channel, then row, then column
	planarColMajor                    // STL-10: channel, then column, then row (MATLAB order)
	greyRowMajor                      // idx (MNIST): one grey channel
)

// recordDataset is a dataset of fixed-size uint8 images, held in memory or
// read on demand from an uncompressed file.
type recordDataset struct {
	prefix  string // "cifar10:train", used in names and errors
	w, h    int
	layout  pixelLayout
	n       int
	pix     []byte   // n*recLen bytes, or nil when file is set
	file    *os.File // uncompressed file read with ReadAt (safe for concurrent use)
	fileOff int64    // offset of image 0 in file
	labels  []int16  // nil if unlabeled
	classes []string
}

func (d *recordDataset) recLen() int {
	if d.layout == greyRowMajor {
		return d.w * d.h
	}
	return 3 * d.w * d.h
}

func (d *recordDataset) Len() int { return d.n }

func (d *recordDataset) Label(i int) int {
	if d.labels == nil || i < 0 || i >= d.n {
		return -1
	}
	return int(d.labels[i])
}

func (d *recordDataset) NumClasses() int {
	if d.labels == nil {
		return 0
	}
	return len(d.classes)
}

func (d *recordDataset) ClassNames() []string {
	if d.labels == nil {
		return nil
	}
	return d.classes
}

func (d *recordDataset) Name(i int) string { return fmt.Sprintf("%s#%d", d.prefix, i) }

// Close releases the file of a dataset read on demand.
func (d *recordDataset) Close() error {
	if d.file != nil {
		return d.file.Close()
	}
	return nil
}

// Image is Source converted to float.
func (d *recordDataset) Image(i int) (*augment.Image, error) {
	src, err := d.Source(i)
	if err != nil {
		return nil, err
	}
	img8 := src.(*augment.Image8)
	img := img8.ToImage()
	ReleaseImage8(img8)
	return img, nil
}

// readMaybeGzip reads a whole file, decompressing it when it starts with the
// gzip magic bytes (whatever its name).
func readMaybeGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllMaybeGzip(f)
}

func readAllMaybeGzip(r io.Reader) ([]byte, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return io.ReadAll(br)
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	var buf bytes.Buffer
	if f, ok := r.(*os.File); ok { // size hint: these files compress little
		if st, err := f.Stat(); err == nil && st.Size() < 1<<31 {
			buf.Grow(int(st.Size()) + int(st.Size())/8)
		}
	}
	if _, err := buf.ReadFrom(zr); err != nil {
		return nil, fmt.Errorf("gzip: %w (file truncated or corrupt)", err)
	}
	return buf.Bytes(), nil
}

// fileExists reports whether path names an existing regular file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// findFile returns the first existing file dir/name, trying each dir with
// each name in turn.
func findFile(dirs []string, names ...string) string {
	for _, d := range dirs {
		for _, n := range names {
			if p := filepath.Join(d, n); fileExists(p) {
				return p
			}
		}
	}
	return ""
}
