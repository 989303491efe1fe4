package eval

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/simclr-go/simclr/internal/atomicfile"
)

// EmbeddingFile streams embeddings, one row per image in dataset order, to
// FILE.npy (plus FILE.labels.txt, FILE.names.txt and FILE.classes.txt
// alongside) or to FILE.csv (columns index, name, [label, class,] e0..eD-1).
// Every file is written under a temporary name and renamed by Close, so an
// interrupted run leaves no truncated output.
type EmbeddingFile struct {
	path       string
	rows, dim  int
	labeled    bool
	classNames []string

	files  []*os.File // temp files, renamed to finals on Close
	finals []string
	npy    *NPYWriter
	labels *bufio.Writer
	names  *bufio.Writer
	csv    *csv.Writer
	row    int
	rec    []string
}

// CreateEmbeddingFile opens path (.npy or .csv) for rows x dim embeddings.
// labeled says whether labels are written; classNames (may be nil) name the
// labels.
func CreateEmbeddingFile(path string, rows, dim int, labeled bool, classNames []string) (*EmbeddingFile, error) {
	if dim <= 0 || rows < 0 {
		return nil, fmt.Errorf("embeddings %s: bad shape (%d, %d)", path, rows, dim)
	}
	e := &EmbeddingFile{path: path, rows: rows, dim: dim, labeled: labeled, classNames: classNames}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".npy":
		base := strings.TrimSuffix(path, filepath.Ext(path))
		f, err := e.create(path)
		if err != nil {
			return nil, err
		}
		if e.npy, err = NewNPYWriter(f, rows, dim); err != nil {
			e.abort()
			return nil, fmt.Errorf("embeddings %s: %w", path, err)
		}
		nf, err := e.create(base + ".names.txt")
		if err != nil {
			return nil, err
		}
		e.names = bufio.NewWriter(nf)
		if labeled {
			lf, err := e.create(base + ".labels.txt")
			if err != nil {
				return nil, err
			}
			e.labels = bufio.NewWriter(lf)
			if len(classNames) > 0 {
				cf, err := e.create(base + ".classes.txt")
				if err != nil {
					return nil, err
				}
				for _, c := range classNames {
					fmt.Fprintln(cf, c)
				}
			}
		}
	case ".csv":
		f, err := e.create(path)
		if err != nil {
			return nil, err
		}
		e.csv = csv.NewWriter(f) // buffers internally
		head := []string{"index", "name"}
		if labeled {
			head = append(head, "label", "class")
		}
		for j := 0; j < dim; j++ {
			head = append(head, "e"+strconv.Itoa(j))
		}
		if err := e.csv.Write(head); err != nil {
			e.abort()
			return nil, fmt.Errorf("embeddings %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("embeddings %s: unknown extension %q (want .npy or .csv)", path, ext)
	}
	return e, nil
}

func (e *EmbeddingFile) create(final string) (*os.File, error) {
	f, err := atomicfile.CreateTemp(filepath.Dir(final), "."+filepath.Base(final)+".tmp*")
	if err != nil {
		e.abort()
		return nil, fmt.Errorf("embeddings: %w", err)
	}
	e.files = append(e.files, f)
	e.finals = append(e.finals, final)
	return f, nil
}

func (e *EmbeddingFile) abort() {
	for _, f := range e.files {
		f.Close()
		os.Remove(f.Name())
	}
	e.files = nil
}

// Write appends a batch: feats holds len(names) rows of dim values; labels
// may be nil when the file is unlabeled.
func (e *EmbeddingFile) Write(feats []float32, labels []int, names []string) error {
	n := len(names)
	if len(feats) != n*e.dim || (e.labeled && len(labels) != n) {
		return fmt.Errorf("embeddings %s: batch of %d names has %d values and %d labels (dim %d)", e.path, n, len(feats), len(labels), e.dim)
	}
	if e.row+n > e.rows {
		return fmt.Errorf("embeddings %s: more than the %d announced rows", e.path, e.rows)
	}
	for _, nm := range names {
		if strings.ContainsAny(nm, "\n\r") {
			return fmt.Errorf("embeddings %s: item name %q contains a line break", e.path, nm)
		}
	}
	if e.npy != nil {
		if err := e.npy.Write(feats); err != nil {
			return fmt.Errorf("embeddings %s: %w", e.path, err)
		}
		for i := 0; i < n; i++ {
			e.names.WriteString(names[i])
			e.names.WriteByte('\n')
			if e.labeled {
				e.labels.WriteString(strconv.Itoa(labels[i]))
				e.labels.WriteByte('\n')
			}
		}
	} else {
		for i := 0; i < n; i++ {
			e.rec = append(e.rec[:0], strconv.Itoa(e.row+i), names[i])
			if e.labeled {
				cls := ""
				if l := labels[i]; l >= 0 && l < len(e.classNames) {
					cls = e.classNames[l]
				}
				e.rec = append(e.rec, strconv.Itoa(labels[i]), cls)
			}
			for _, v := range feats[i*e.dim : (i+1)*e.dim] {
				e.rec = append(e.rec, strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
			if err := e.csv.Write(e.rec); err != nil {
				return fmt.Errorf("embeddings %s: %w", e.path, err)
			}
		}
	}
	e.row += n
	return nil
}

// Close flushes everything, checks the row count and moves the files into
// place. After an error no output file is left behind.
func (e *EmbeddingFile) Close() error {
	err := e.flush()
	if err == nil && e.row != e.rows {
		err = fmt.Errorf("embeddings %s: wrote %d of %d rows", e.path, e.row, e.rows)
	}
	if err != nil {
		e.abort()
		return err
	}
	for i, f := range e.files {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), e.finals[i])
		}
	}
	if err != nil {
		e.abort()
		return fmt.Errorf("embeddings %s: %w", e.path, err)
	}
	e.files = nil
	return nil
}

func (e *EmbeddingFile) flush() error {
	var errs []error
	if e.npy != nil {
		// NPYWriter.Close would complain about the row count too; check
		// that once, below, with the file name.
		errs = append(errs, e.npy.w.Flush())
	}
	if e.names != nil {
		errs = append(errs, e.names.Flush())
	}
	if e.labels != nil {
		errs = append(errs, e.labels.Flush())
	}
	if e.csv != nil {
		e.csv.Flush()
		errs = append(errs, e.csv.Error())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("embeddings %s: %w", e.path, err)
	}
	return nil
}

// Files lists the files this writer produces (final names).
func (e *EmbeddingFile) Files() []string { return append([]string(nil), e.finals...) }
