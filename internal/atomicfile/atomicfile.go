// Package atomicfile creates the temporary files that output files are
// written to before being renamed into place.
//
// os.CreateTemp creates files with mode 0600 whatever the umask, so every
// file renamed from one (checkpoints, config.yaml, plots, embeddings,
// exports, grids) ended up readable by its owner only, unlike metrics.jsonl,
// which os.OpenFile creates with 0644 minus the umask. CreateTemp here asks
// for 0666 and lets the umask decide, as os.Create and shells do.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

var seq atomic.Uint64

// CreateTemp is os.CreateTemp with mode 0666 before the umask: it creates
// a new file in dir (the default temporary directory when dir is "") whose
// name is pattern with its last '*' (or, without one, its end) replaced by
// a unique string, opened for reading and writing.
func CreateTemp(dir, pattern string) (*os.File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if strings.ContainsRune(pattern, os.PathSeparator) {
		return nil, &os.PathError{Op: "createtemp", Path: pattern, Err: errors.New("pattern contains path separator")}
	}
	prefix, suffix := pattern, ""
	if i := strings.LastIndexByte(pattern, '*'); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	base := uint64(time.Now().UnixNano()) ^ uint64(os.Getpid())<<32
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(base+seq.Add(1)*0x9e3779b97f4a7c15, 36)+suffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if os.IsExist(err) && try < 10000 {
			continue
		}
		return f, err
	}
}

// Write creates path with the content write produces, so that a
// crash or an error at any point leaves either the old file or the new
// one: a temporary file in the same directory is written, flushed to disk,
// renamed over path, and the directory is synced. The file's mode is 0666
// less the umask (CreateTemp). On error the temporary file is removed and
// the error names path.
func Write(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := write(f); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("%s: sync directory: %w", path, err)
	}
	return nil
}

// SyncDir flushes a directory's entries (a rename) to disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
