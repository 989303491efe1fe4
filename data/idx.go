package data

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

var (
	fashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	mnistClasses        = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
)

// The Fashion-MNIST test set (MIT licence, see fashionmnist/LICENSE) is
// embedded so that the default dataset works offline.
var (
	//go:embed fashionmnist/t10k-images-idx3-ubyte.gz
	fashionImagesGz []byte
	//go:embed fashionmnist/t10k-labels-idx1-ubyte.gz
	fashionLabelsGz []byte
)

var embeddedFashion = sync.OnceValues(func() (*recordDataset, error) {
	img, err := readAllMaybeGzip(bytes.NewReader(fashionImagesGz))
	if err != nil {
		return nil, fmt.Errorf("embedded t10k-images-idx3-ubyte.gz: %w", err)
	}
	lab, err := readAllMaybeGzip(bytes.NewReader(fashionLabelsGz))
	if err != nil {
		return nil, fmt.Errorf("embedded t10k-labels-idx1-ubyte.gz: %w", err)
	}
	return parseIdx("fashion-mnist:test", fashionMNISTClasses,
		"embedded t10k-images-idx3-ubyte.gz", img, "embedded t10k-labels-idx1-ubyte.gz", lab)
})

func openEmbeddedFashionMNIST(split string) (Dataset, error) {
	if split != "" && split != "test" {
		return nil, fmt.Errorf("data: the embedded fashion-mnist holds only the test split, not %q; for the training set use fashion-mnist:PATH@train with PATH holding train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz (apt-get install dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)", split)
	}
	return embeddedFashion()
}

// openIdx reads an MNIST-style dataset (idx files) from a folder.
func openIdx(kind string, classes []string, dir, split string) (Dataset, error) {
	if split == "" {
		split = "train"
	}
	prefix := map[string]string{"train": "train", "test": "t10k"}[split]
	hint := fmt.Sprintf("put %s-images-idx3-ubyte(.gz) and %s-labels-idx1-ubyte(.gz) there", prefix, prefix)
	if kind == "fashion-mnist" {
		hint += " (apt-get install dataset-fashion-mnist installs them into /usr/share/datasets/fashion-mnist)"
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %s does not exist; %s", kind, dir, hint)
	}
	dirs := []string{dir}
	imgPath := findFile(dirs, prefix+"-images-idx3-ubyte.gz", prefix+"-images-idx3-ubyte", prefix+"-images.idx3-ubyte")
	labPath := findFile(dirs, prefix+"-labels-idx1-ubyte.gz", prefix+"-labels-idx1-ubyte", prefix+"-labels.idx1-ubyte")
	if imgPath == "" || labPath == "" {
		return nil, fmt.Errorf("%s: %s: no %s-images-idx3-ubyte(.gz) / %s-labels-idx1-ubyte(.gz) found; %s", kind, dir, prefix, prefix, hint)
	}
	img, err := readMaybeGzip(imgPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", kind, imgPath, err)
	}
	lab, err := readMaybeGzip(labPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", kind, labPath, err)
	}
	return parseIdx(kind+":"+split, classes, imgPath, img, labPath, lab)
}

// parseIdx decodes an idx3 image file and its idx1 label file (big-endian
// headers: magic 2051, count, rows, cols / magic 2049, count).
func parseIdx(prefix string, classes []string, imgName string, img []byte, labName string, lab []byte) (*recordDataset, error) {
	if len(img) < 16 || binary.BigEndian.Uint32(img) != 2051 {
		return nil, fmt.Errorf("%s: %s: not an idx3 image file (want magic 2051 in a 16-byte header)", prefix, imgName)
	}
	n := int(binary.BigEndian.Uint32(img[4:]))
	rows := int(binary.BigEndian.Uint32(img[8:]))
	cols := int(binary.BigEndian.Uint32(img[12:]))
	if rows <= 0 || cols <= 0 || rows > 1<<14 || cols > 1<<14 {
		return nil, fmt.Errorf("%s: %s: implausible image size %dx%d in header", prefix, imgName, rows, cols)
	}
	if want := 16 + n*rows*cols; len(img) != want {
		return nil, fmt.Errorf("%s: %s: header says %d images of %dx%d (%d bytes) but the file has %d bytes: truncated or corrupt", prefix, imgName, n, rows, cols, want, len(img))
	}
	if len(lab) < 8 || binary.BigEndian.Uint32(lab) != 2049 {
		return nil, fmt.Errorf("%s: %s: not an idx1 label file (want magic 2049 in an 8-byte header)", prefix, labName)
	}
	if m := int(binary.BigEndian.Uint32(lab[4:])); m != n || len(lab) != 8+n {
		return nil, fmt.Errorf("%s: %s: %d labels (%d bytes of data) for %d images in %s: truncated or mismatched files", prefix, labName, m, len(lab)-8, n, imgName)
	}
	d := &recordDataset{prefix: prefix, w: cols, h: rows, layout: greyRowMajor, n: n, pix: img[16:], classes: classes, labels: make([]int16, n)}
	for i, b := range lab[8:] {
		if int(b) >= len(classes) {
			return nil, fmt.Errorf("%s: %s: label %d of image %d, want 0..%d", prefix, labName, b, i, len(classes)-1)
		}
		d.labels[i] = int16(b)
	}
	return d, nil
}
