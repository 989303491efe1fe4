package data

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// cifarFormat describes one of the CIFAR binary versions.
type cifarFormat struct {
	kind       string              // "cifar10"
	title      string              // "CIFAR-10"
	labelBytes int                 // label bytes before the pixels of a record
	labelByte  int                 // which of them is the label used
	splits     map[string][]string // split -> file base names, in order
	subdir     string              // folder inside the official archive
	archive    string              // official archive name
	classes    []string
}

var cifar10Format = cifarFormat{
	kind: "cifar10", title: "CIFAR-10", labelBytes: 1, labelByte: 0,
	splits: map[string][]string{
		"train": {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"},
		"test":  {"test_batch"},
	},
	subdir: "cifar-10-batches-bin", archive: "cifar-10-binary.tar.gz",
	classes: []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"},
}

// CIFAR-100 records carry a coarse and a fine label; we use the fine one.
var cifar100Format = cifarFormat{
	kind: "cifar100", title: "CIFAR-100", labelBytes: 2, labelByte: 1,
	splits: map[string][]string{"train": {"train"}, "test": {"test"}},
	subdir: "cifar-100-binary", archive: "cifar-100-binary.tar.gz",
	classes: strings.Fields(`apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle
		bowl boy bridge bus butterfly camel can castle caterpillar cattle
		chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
		dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard
		lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain
		mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree
		plain plate poppy porcupine possum rabbit raccoon ray road rocket
		rose sea seal shark shrew skunk skyscraper snail snake spider
		squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor
		train trout tulip turtle wardrobe whale willow_tree wolf woman worm`),
}

const cifarPixels = 3 * 32 * 32

func (f cifarFormat) recLen() int { return f.labelBytes + cifarPixels }

func (f cifarFormat) downloadHint() string {
	return fmt.Sprintf("download the %s binary version (%s from https://www.cs.toronto.edu/~kriz/cifar.html) and put its files there, or give the path of the .tar.gz itself", f.title, f.archive)
}

// openCIFAR reads a CIFAR split from a folder, a single batch file, or the
// official .tar.gz archive.
func openCIFAR(f cifarFormat, path, split string) (Dataset, error) {
	if split == "" {
		split = "train"
	}
	d := &recordDataset{prefix: f.kind + ":" + split, w: 32, h: 32, layout: planarRowMajor, classes: f.classes}
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %s does not exist; %s", f.kind, path, f.downloadHint())
		}
		return nil, fmt.Errorf("%s: %w", f.kind, err)
	}
	lower := strings.ToLower(path)
	switch {
	case st.IsDir():
		err = f.readFolder(d, path, split)
	case strings.HasSuffix(lower, ".tar.gz") || strings.HasSuffix(lower, ".tgz") || strings.HasSuffix(lower, ".tar"):
		err = f.readArchive(d, path, split)
	default: // one batch file
		d.prefix = f.kind + ":" + filepath.Base(path)
		err = f.readFile(d, path)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (f cifarFormat) readFolder(d *recordDataset, dir, split string) error {
	dirs := []string{dir, filepath.Join(dir, f.subdir)}
	bases := f.splits[split]
	paths := make([]string, len(bases))
	for k, base := range bases {
		if paths[k] = findFile(dirs, base+".bin", base+".bin.gz"); paths[k] == "" {
			return fmt.Errorf("%s: %s: no %s.bin(.gz) found; %s", f.kind, dir, base, f.downloadHint())
		}
	}
	// Decompress the files in parallel (gzip is the slow part), then parse
	// them in order.
	raw := make([][]byte, len(paths))
	errs := make([]error, len(paths))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for k, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			raw[k], errs[k] = readMaybeGzip(p)
		}()
	}
	wg.Wait()
	for k, p := range paths {
		if errs[k] != nil {
			return fmt.Errorf("%s: %s: %w", f.kind, p, errs[k])
		}
	}
	total := 0
	for _, b := range raw {
		total += len(b)
	}
	d.pix = make([]byte, 0, total/f.recLen()*cifarPixels)
	for k, p := range paths {
		if err := f.parse(d, p, raw[k]); err != nil {
			return err
		}
		raw[k] = nil
	}
	return nil
}

func (f cifarFormat) readFile(d *recordDataset, path string) error {
	b, err := readMaybeGzip(path)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", f.kind, path, err)
	}
	return f.parse(d, path, b)
}

// parse appends the records in b (the contents of file name) to d.
func (f cifarFormat) parse(d *recordDataset, name string, b []byte) error {
	rl := f.recLen()
	if len(b) == 0 {
		return fmt.Errorf("%s: %s: empty file", f.kind, name)
	}
	if len(b)%rl != 0 {
		return fmt.Errorf("%s: %s: %d bytes is not a whole number of %d-byte records (%d records and %d bytes over): truncated or not a %s binary file",
			f.kind, name, len(b), rl, len(b)/rl, len(b)%rl, f.title)
	}
	n := len(b) / rl
	if d.pix == nil {
		d.pix = make([]byte, 0, n*cifarPixels)
	}
	for r := range n {
		rec := b[r*rl : (r+1)*rl]
		lab := int(rec[f.labelByte])
		if lab >= len(f.classes) {
			return fmt.Errorf("%s: %s: record %d has label %d, want 0..%d: not a %s binary file",
				f.kind, name, r, lab, len(f.classes)-1, f.title)
		}
		d.labels = append(d.labels, int16(lab))
		d.pix = append(d.pix, rec[f.labelBytes:]...)
	}
	d.n += n
	return nil
}

// readArchive streams the official .tar.gz and reads the split's files from it.
func (f cifarFormat) readArchive(d *recordDataset, path, split string) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", f.kind, err)
	}
	defer fh.Close()
	var r io.Reader = fh
	if !strings.HasSuffix(strings.ToLower(path), ".tar") {
		zr, err := gzip.NewReader(fh)
		if err != nil {
			return fmt.Errorf("%s: %s: gzip: %w", f.kind, path, err)
		}
		r = zr
	}
	want := map[string][]byte{}
	for _, base := range f.splits[split] {
		want[base+".bin"] = nil
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %s: reading archive: %w (file truncated or corrupt)", f.kind, path, err)
		}
		base := filepath.Base(h.Name)
		if _, ok := want[base]; !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("%s: %s: reading %s: %w (file truncated or corrupt)", f.kind, path, h.Name, err)
		}
		want[base] = b
	}
	for _, base := range f.splits[split] {
		b := want[base+".bin"]
		if b == nil {
			return fmt.Errorf("%s: archive %s has no %s.bin; %s", f.kind, path, base, f.downloadHint())
		}
		if err := f.parse(d, path+":"+base+".bin", b); err != nil {
			return err
		}
	}
	return nil
}
