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
