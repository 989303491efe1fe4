// Package data reads image datasets (CIFAR-10/100, STL-10, Fashion-MNIST,
// ImageNet-style folders of JPEG/PNG files) and feeds them to training and
// feature extraction through parallel, deterministic batch loaders.
//
// A dataset is named by a spec string, KIND:PATH[@SPLIT], opened with Open:
//
//	cifar10:PATH[@train|test]        official binary version (folder, .bin/.bin.gz files or cifar-10-binary.tar.gz)
//	cifar100:PATH[@train|test]       official binary version (folder or cifar-100-binary.tar.gz); fine labels
//	stl10:PATH[@train|test|unlabeled] official binary version (folder with train_X.bin ...)
//	folder:PATH                      class sub-folders of images (torchvision ImageFolder), or one flat unlabeled folder
//	fashion-mnist[@test]             the Fashion-MNIST test set embedded in this package (DefaultSpec)
//	fashion-mnist:PATH[@train|test]  idx files (train-images-idx3-ubyte.gz ...) from disk; mnist:PATH likewise
//
// A PATH that exists as written is never split at '@' (folder:/data/with@at
// is that folder); see ParseSpec.
//
// Fixed-format datasets keep their pixels as uint8 in memory (CIFAR-10 train:
// 150 MiB) and convert to float32 on each Image call; folders store only the
// file paths and decode one file per Image call.
//
// NewPairLoader produces the two augmented views per image that SimCLR trains
// on; NewEvalLoader produces one deterministic view per image for feature
// extraction. Both are Go range-over-func iterators.
package data

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/simclr-go/simclr/augment"
)

// DefaultSpec names the dataset used when the user gives none: the
// Fashion-MNIST test set embedded in the binary, so that every command works
// offline with no downloads.
const DefaultSpec = "fashion-mnist"

// Dataset is an indexed collection of images. Implementations are safe for
// concurrent use by multiple goroutines.
type Dataset interface {
	// Len is the number of images.
	Len() int
	// Image returns image i as a new planar RGB image in [0,1]. Its error
	// names the file (or record) and the problem.
	Image(i int) (*augment.Image, error)
	// Label is the class of image i in [0, NumClasses), or -1 if unlabeled.
	Label(i int) int
	// NumClasses is the number of classes, 0 if the dataset is unlabeled.
	NumClasses() int
	// ClassNames are the names of the classes, indexed by label; may be nil.
	ClassNames() []string
	// Name identifies image i in exports: a file path, or
	// "cifar10:train#123" for record-based formats.
	Name(i int) string
}

type opener struct {
	splits   []string // nil: the kind has no splits
	needPath bool
	open     func(path, split string) (Dataset, error) // split "" means the kind's default
	usage    string
}

var kinds = map[string]opener{
	"cifar10": {
		splits: []string{"train", "test"}, needPath: true,
		open:  func(p, s string) (Dataset, error) { return openCIFAR(cifar10Format, p, s) },
		usage: "cifar10:PATH[@train|test]",
	},
	"cifar100": {
		splits: []string{"train", "test"}, needPath: true,
		open:  func(p, s string) (Dataset, error) { return openCIFAR(cifar100Format, p, s) },
		usage: "cifar100:PATH[@train|test]",
	},
	"stl10": {
		splits: []string{"train", "test", "unlabeled"}, needPath: true,
		open:  openSTL10,
		usage: "stl10:PATH[@train|test|unlabeled]",
	},
	"folder": {
		needPath: true,
		open:     func(p, _ string) (Dataset, error) { return OpenFolder(p) },
		usage:    "folder:PATH",
	},
	"fashion-mnist": {
		splits: []string{"train", "test"},
		open: func(p, s string) (Dataset, error) {
			if p == "" {
				return openEmbeddedFashionMNIST(s)
			}
			return openIdx("fashion-mnist", fashionMNISTClasses, p, s)
		},
		usage: "fashion-mnist[@test] or fashion-mnist:PATH[@train|test]",
	},
	"mnist": {
		splits: []string{"train", "test"}, needPath: true,
		open:  func(p, s string) (Dataset, error) { return openIdx("mnist", mnistClasses, p, s) },
		usage: "mnist:PATH[@train|test]",
	},
}

func kindNames() string {
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// ParseSpec splits a dataset spec KIND:PATH[@SPLIT] into its parts. The split
// is the text after the last '@' when that text contains no path separator
// and the whole text after "KIND:" does not name an existing file or folder:
// an existing path wins, so folder:/data/with@at opens that folder. A path
// with '@' that does not exist yet, or one whose '@' text is also a split,
// can be ended by an explicit @SPLIT or an empty one (folder:/x/a@b@).
func ParseSpec(spec string) (kind, path, split string, err error) {
	if strings.TrimSpace(spec) == "" {
		return "", "", "", errors.New("data: empty dataset spec; want KIND:PATH[@SPLIT] with KIND one of " + kindNames())
	}
	kind, path, _ = strings.Cut(spec, ":")
	if k, s, ok := strings.Cut(kind, "@"); ok && path == "" && !strings.Contains(spec, ":") {
		kind, split = k, s // "fashion-mnist@test"
	} else if i := strings.LastIndex(path, "@"); i >= 0 && !strings.ContainsAny(path[i+1:], `/\`) && (i == len(path)-1 || !exists(path)) {
		path, split = path[:i], path[i+1:]
	}
	kind = strings.ToLower(kind)
	return kind, path, split, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Open opens the dataset named by spec (see the package documentation).
// When the files are missing, the error says which files to put where.
func Open(spec string) (Dataset, error) {
	kind, path, split, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	op, ok := kinds[kind]
	if !ok {
		hint := ""
		if st, err := os.Stat(spec); err == nil && st.IsDir() {
			hint = fmt.Sprintf("; for a folder of images use folder:%s", spec)
		}
		return nil, fmt.Errorf("data: unknown dataset kind %q in spec %q (known kinds: %s)%s", kind, spec, kindNames(), hint)
	}
	if path == "" && op.needPath {
		return nil, fmt.Errorf("data: spec %q has no path; use %s", spec, op.usage)
	}
	if split != "" {
		if op.splits == nil {
			return nil, fmt.Errorf("data: spec %q: %s has no splits (got @%s); use %s", spec, kind, split, op.usage)
		}
		found := false
		for _, s := range op.splits {
			found = found || s == split
		}
		if !found {
			return nil, fmt.Errorf("data: spec %q: unknown split %q for %s (want one of %s)", spec, split, kind, strings.Join(op.splits, ", "))
		}
	}
	return op.open(path, split)
}

func checkIndex(what string, i, n int) error {
	if i < 0 || i >= n {
		return fmt.Errorf("%s: image index %d out of range [0,%d)", what, i, n)
	}
	return nil
}
