// Package stfiletest damages safetensors files the way disks, copies and
// stray writes do, for the tests of every command that loads weights.
package stfiletest

import (
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/simclr-go/simclr/stfile"
)

// Kinds of damage Damage applies.
const (
	Zeroed     = "zeroed tensor"  // every byte of the largest tensor set to 0
	FlippedBit = "flipped bit"    // one mantissa bit of the largest tensor (the value stays finite)
	Truncated  = "truncated file" // the last 100 bytes cut off
	NaNWeight  = "NaN weight"     // one float32 of the largest tensor set to NaN
)

// Kinds lists every kind of damage.
var Kinds = []string{Zeroed, FlippedBit, Truncated, NaNWeight}

// header decodes the file's JSON header (8-byte little-endian length,
// JSON, data) by hand, independently of the code under test.
func header(t testing.TB, b []byte) (map[string]json.RawMessage, int) {
	t.Helper()
	n := int(binary.LittleEndian.Uint64(b))
	var h map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &h); err != nil {
		t.Fatalf("stfiletest: header: %v", err)
	}
	return h, 8 + n
}

// Largest returns the name and byte range of the file's largest float32
// tensor.
func Largest(t testing.TB, b []byte) (name string, lo, hi int) {
	t.Helper()
	h, base := header(t, b)
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == "__metadata__" {
			continue
		}
		var info struct {
			DType   string `json:"dtype"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(h[n], &info); err != nil {
			t.Fatal(err)
		}
		if info.DType == "F32" && info.Offsets[1]-info.Offsets[0] > hi-lo {
			name, lo, hi = n, base+info.Offsets[0], base+info.Offsets[1]
		}
	}
	return name, lo, hi
}

// Damage applies one kind of damage to the file at path, in place.
func Damage(t testing.TB, path, kind string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, lo, hi := Largest(t, b)
	mid := lo + (hi-lo)/8*4 // a float32 boundary inside the tensor
	switch kind {
	case Zeroed:
		clear(b[lo:hi])
	case FlippedBit:
		b[mid+1] ^= 0x04
	case Truncated:
		b = b[:len(b)-100]
	case NaNWeight:
		binary.LittleEndian.PutUint32(b[mid:], math.Float32bits(float32(math.NaN())))
	default:
		t.Fatalf("stfiletest: unknown damage %q", kind)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// StripChecksums rewrites path without its checksums, as simclr wrote
// files before it stored them.
func StripChecksums(t testing.TB, path string) {
	t.Helper()
	Rewrite(t, path, path, func(meta map[string]string) {
		if _, ok := meta[stfile.ChecksumKey]; !ok {
			t.Fatalf("stfiletest: %s has no checksums to strip", path)
		}
		delete(meta, stfile.ChecksumKey)
	})
}

// Rewrite writes the tensors of src to dst with the safetensors library's
// own serializer and src's metadata as edit leaves it: another tool's
// edit of a file.
func Rewrite(t testing.TB, src, dst string, edit func(meta map[string]string)) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Deserialize(b)
	if err != nil {
		t.Fatal(err)
	}
	_, md, err := safetensors.ReadMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	meta := md.Metadata()
	edit(meta)
	views := map[string]safetensors.TensorView{}
	for _, n := range st.Names() {
		views[n], _ = st.Tensor(n)
	}
	out, err := safetensors.Serialize(views, meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// CopyTree copies a file or a directory tree (a run directory), so that a
// test damages its own copy.
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
