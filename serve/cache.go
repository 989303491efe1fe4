package serve

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/internal/atomicfile"
)

// CacheDir is the folder of a run directory that holds serve's embedding
// caches; nothing else in the run is written.
const CacheDir = "serve-cache"

// cacheFormat versions the cache files; a change of layout bumps it, which
// makes every older cache stale.
const cacheFormat = "simclr-serve-cache/1"

// CacheKey is everything the cached embeddings depend on. A cache is used
// only when its stored key equals the key computed now.
type CacheKey struct {
	Format  string `json:"format"`
	Weights string `json:"weights"` // Embedder.WeightsHash: weights, layer, eval view
	Spec    string `json:"spec"`
	Len     int    `json:"len"`
	Data    string `json:"data"` // DataHash
}

// cacheMeta is the sidecar JSON written after the .npy, as the commit
// marker of a cache.
type cacheMeta struct {
	Key   CacheKey `json:"key"`
	Rows  int      `json:"rows"`
	Cols  int      `json:"cols"`
	CRC32 uint32   `json:"crc32c"` // of the float32 payload
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// DataHash is a SHA-256 of a dataset's identity: every image's name and
// label; for images that are files, their size and modification time; for
// record formats, the size and time of the files under the spec's path;
// and the pixels of up to 16 evenly spaced images, so that content changed
// in place is noticed too.
func DataHash(spec string, ds data.Dataset) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%d\n%q\n", spec, ds.Len(), ds.ClassNames())
	files := false
	for i := 0; i < ds.Len(); i++ {
		name := ds.Name(i)
		fmt.Fprintf(h, "%s\t%d", name, ds.Label(i))
		if st, err := os.Stat(name); err == nil && st.Mode().IsRegular() {
			files = true
			fmt.Fprintf(h, "\t%d\t%d", st.Size(), st.ModTime().UnixNano())
		}
		h.Write([]byte{'\n'})
	}
	if !files {
		if _, path, _, err := data.ParseSpec(spec); err == nil && path != "" {
			hashStat(h, path)
		}
	}
	n := ds.Len()
	for j := 0; j < min(16, n); j++ {
		img, err := ds.Image(j * n / min(16, n))
		if err != nil {
			return "", err
		}
		b := make([]byte, 0, 4*len(img.Pix))
		for _, v := range img.Pix {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		fmt.Fprintf(h, "%dx%d", img.W, img.H)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashStat writes the size and time of path, and of the entries of path
// when it is a folder.
func hashStat(w io.Writer, path string) {
	st, err := os.Stat(path)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "%s\t%d\t%d\n", path, st.Size(), st.ModTime().UnixNano())
	if !st.IsDir() {
		return
	}
	ents, _ := os.ReadDir(path)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			fmt.Fprintf(w, "%s\t%d\t%d\n", e.Name(), fi.Size(), fi.ModTime().UnixNano())
		}
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// cachePaths are the two files of the cache of one set and layer.
func cachePaths(rundir, set, layer string) (npy, meta string) {
	base := filepath.Join(rundir, CacheDir, unsafeName.ReplaceAllString(set, "_")+"-"+layer)
	return base + ".npy", base + ".json"
}

// LoadCache returns the cached embeddings for key, or nil when there is no
// cache or it is stale (another key) or damaged (the reason is returned
// for the log).
func LoadCache(rundir, set, layer string, key CacheKey) ([]float32, string) {
	npyPath, metaPath := cachePaths(rundir, set, layer)
	mb, err := os.ReadFile(metaPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "no cache yet"
		}
		return nil, err.Error()
	}
	var m cacheMeta
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Sprintf("%s: %v", metaPath, err)
	}
	if m.Key != key {
		return nil, "cache is stale (checkpoint, layer or data changed)"
	}
	f, err := os.Open(npyPath)
	if err != nil {
		return nil, err.Error()
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	hd, err := eval.ReadNPYHeader(br)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", npyPath, err)
	}
	if hd.Descr != "<f4" || hd.FortranOrder || len(hd.Shape) != 2 || hd.Shape[0] != m.Rows || hd.Shape[1] != m.Cols || m.Rows != key.Len {
		return nil, fmt.Sprintf("%s: shape %v does not match its key (%d x %d)", npyPath, hd.Shape, m.Rows, m.Cols)
	}
	out := make([]float32, m.Rows*m.Cols)
	crc := crc32.New(crcTable)
	buf := make([]byte, 1<<16)
	for i := 0; i < len(out); {
		c := min(len(buf)/4, len(out)-i)
		if _, err := io.ReadFull(br, buf[:4*c]); err != nil {
			return nil, fmt.Sprintf("%s: truncated: %v", npyPath, err)
		}
		crc.Write(buf[:4*c])
		for j := 0; j < c; j++ {
			out[i+j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
		}
		i += c
	}
	if crc.Sum32() != m.CRC32 {
		return nil, fmt.Sprintf("%s: checksum mismatch (damaged file)", npyPath)
	}
	return out, ""
}

// SaveCache writes feats ([key.Len, cols]) as the cache of set and layer:
// the .npy first, then the JSON key, each to a temporary file renamed into
// place, so a reader sees either the old complete cache, or no key, or the
// new complete cache.
func SaveCache(rundir, set, layer string, key CacheKey, feats []float32, cols int) error {
	npyPath, metaPath := cachePaths(rundir, set, layer)
	if err := os.MkdirAll(filepath.Dir(npyPath), 0o755); err != nil {
		return fmt.Errorf("embedding cache: %w", err)
	}
	// Invalidate first: a crash between the two renames leaves no key.
	if err := os.Remove(metaPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("embedding cache: %w", err)
	}
	err := writeAtomic(npyPath, func(w io.Writer) error {
		nw, err := eval.NewNPYWriter(w, len(feats)/cols, cols)
		if err != nil {
			return err
		}
		if err := nw.Write(feats); err != nil {
			return err
		}
		return nw.Close()
	})
	if err != nil {
		return err
	}
	crc := crc32.New(crcTable)
	b := make([]byte, 0, 1<<16)
	for i := 0; i < len(feats); i += len(b) / 4 {
		b = b[:0]
		for _, v := range feats[i:min(i+1<<14, len(feats))] {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		crc.Write(b)
	}
	mb, err := json.MarshalIndent(cacheMeta{Key: key, Rows: len(feats) / cols, Cols: cols, CRC32: crc.Sum32()}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(metaPath, func(w io.Writer) error { _, err := w.Write(mb); return err })
}

// writeAtomic writes path through a synced temporary file and a rename.
func writeAtomic(path string, fill func(io.Writer) error) error {
	f, err := atomicfile.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("embedding cache: %w", err)
	}
	tmp := f.Name()
	bw := bufio.NewWriterSize(f, 1<<20)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("embedding cache %s: %w", path, err)
	}
	return nil
}
