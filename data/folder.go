package data

import (
	"errors"
	"fmt"
	_ "image/gif" // register decoders for image.Decode
	_ "image/jpeg"
	_ "image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/simclr-go/simclr/augment"
)

// imageExts are the file name extensions (lower case) a folder dataset reads.
var imageExts = []string{".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}

// MaxImagePixels bounds the width*height of a decoded image file, so that a
// corrupt or hostile header cannot make a worker allocate gigabytes.
const MaxImagePixels = 1 << 26

func isImageFile(name string) bool {
	return slices.Contains(imageExts, strings.ToLower(filepath.Ext(name)))
}

// folderDataset is a set of image files, decoded one per Image call.
type folderDataset struct {
	root    string
	paths   []string
	labels  []int32 // nil if unlabeled
	classes []string
}

// OpenFolder opens root as an image-folder dataset. If root has
// sub-folders holding images, each sub-folder (searched recursively) is a
// class, classes sorted by name as in torchvision's ImageFolder; files at the
// top level then are an error, as is a class folder without images. If root
// holds image files and no sub-folder with images, it is one unlabeled set.
// Names starting with '.' are ignored. Files are listed here and decoded on
// each Image call; JPEG, PNG, GIF, BMP, WebP and TIFF in any colour model
// (grey, CMYK, paletted, with alpha) are converted to RGB, alpha dropped as
// PIL's convert("RGB") does. EXIF orientation is not applied (as in PIL).
func OpenFolder(root string) (Dataset, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("folder: %s does not exist; give a folder of images, or of class sub-folders of images", root)
		}
		return nil, fmt.Errorf("folder: %w", err)
	}
	var loose, others []string
	type class struct {
		name  string
		files []string
	}
	var classes []class
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(root, name)
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(p); err == nil {
				isDir = st.IsDir()
			}
		}
		if !isDir {
			if isImageFile(name) {
				loose = append(loose, p)
			} else {
				others = append(others, name)
			}
			continue
		}
		files, err := listImages(p)
		if err != nil {
			return nil, fmt.Errorf("folder: %w", err)
		}
		classes = append(classes, class{name, files})
	}
	withImages := 0
	for _, c := range classes {
		if len(c.files) > 0 {
			withImages++
		}
	}
	d := &folderDataset{root: root}
	switch {
	case len(loose) > 0 && withImages > 0:
		return nil, fmt.Errorf("folder: %s has both image files at the top level (e.g. %s) and class sub-folders with images; move the loose files into a class folder, or give a folder of only one kind", root, filepath.Base(loose[0]))
	case len(loose) > 0:
		d.paths = loose
	case withImages == 0:
		msg := fmt.Sprintf("folder: %s: no image files (%s) found in it or its sub-folders", root, strings.Join(imageExts, " "))
		if len(others) > 0 {
			msg += fmt.Sprintf("; it has %d other files, e.g. %s", len(others), others[0])
		}
		return nil, errors.New(msg)
	default:
		for _, c := range classes {
			if len(c.files) == 0 {
				return nil, fmt.Errorf("folder: %s: class folder %q has no image files (%s); remove it or add images", root, c.name, strings.Join(imageExts, " "))
			}
			lab := int32(len(d.classes))
			d.classes = append(d.classes, c.name)
			for _, f := range c.files {
				d.paths = append(d.paths, f)
				d.labels = append(d.labels, lab)
			}
		}
	}
	return d, nil
}

// listImages returns the image files under dir, recursively, in lexical order.
func listImages(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.IsDir() && isImageFile(e.Name()) {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

func (d *folderDataset) Len() int { return len(d.paths) }

func (d *folderDataset) Label(i int) int {
	if d.labels == nil || i < 0 || i >= len(d.labels) {
		return -1
	}
	return int(d.labels[i])
}

func (d *folderDataset) NumClasses() int { return len(d.classes) }

func (d *folderDataset) ClassNames() []string { return d.classes }

func (d *folderDataset) Name(i int) string {
	if i < 0 || i >= len(d.paths) {
		return fmt.Sprintf("folder:%s#%d", d.root, i)
	}
	return d.paths[i]
}

func (d *folderDataset) Image(i int) (*augment.Image, error) {
	if err := checkIndex("folder:"+d.root, i, len(d.paths)); err != nil {
		return nil, err
	}
	return DecodeImageFile(d.paths[i])
}
