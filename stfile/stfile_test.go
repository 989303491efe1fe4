package stfile

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
)

func sample() []Tensor {
	return []Tensor{
		{Name: "conv1.weight", Shape: []int{2, 3}, F32: []float32{1, -2, 3.5, float32(math.Pi), 0, -1e-30}},
		{Name: "bn1.bias", Shape: []int{3}, F32: []float32{7, 1e30, -0.25}},
		{Name: "bn1.num_batches_tracked", Shape: []int{}, I64: []int64{1 << 40}},
	}
}

func write(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := Write(path, sample(), map[string]string{"format": "test/1", "note": "x"}, Options{}); err != nil {
		t.Fatal(err)
	}
	return path
}

// header decodes the file's JSON header by hand (the format: 8-byte
// little-endian length, JSON, data), the oracle for the offsets.
func header(t *testing.T, b []byte) (map[string]json.RawMessage, int) {
	t.Helper()
	n := int(binary.LittleEndian.Uint64(b))
	var h map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	return h, 8 + n
}

// tensorBytes is the byte range of tensor name in file b.
func tensorBytes(t *testing.T, b []byte, name string) (int, int) {
	t.Helper()
	h, base := header(t, b)
	var info struct {
		Offsets [2]int `json:"data_offsets"`
	}
	if err := json.Unmarshal(h[name], &info); err != nil {
		t.Fatal(err)
	}
	return base + info.Offsets[0], base + info.Offsets[1]
}

func TestRoundTripAndChecksums(t *testing.T) {
	path := write(t)
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Verified {
		t.Error("a file written with checksums reads as unverified")
	}
	if !reflect.DeepEqual(f.Metadata, map[string]string{"format": "test/1", "note": "x"}) {
		t.Errorf("metadata %v", f.Metadata)
	}
	for _, w := range sample() {
		g := f.Tensors[w.Name]
		if !reflect.DeepEqual(g.Shape, w.Shape) || !reflect.DeepEqual(g.F32, w.F32) || !reflect.DeepEqual(g.I64, w.I64) {
			t.Errorf("%s: got %+v, want %+v", w.Name, g, w)
		}
	}
	// The stored checksums are the CRC-32C of each tensor's bytes, as
	// hash/crc32 computes it over the byte range the header names.
	b, _ := os.ReadFile(path)
	h, _ := header(t, b)
	var md map[string]string
	json.Unmarshal(h["__metadata__"], &md)
	var s struct{ Tensors map[string]string }
	if err := json.Unmarshal([]byte(md[ChecksumKey]), &s); err != nil {
		t.Fatal(err)
	}
	for _, w := range sample() {
		lo, hi := tensorBytes(t, b, w.Name)
		want := crc32.Checksum(b[lo:hi], crc32.MakeTable(crc32.Castagnoli))
		if s.Tensors[w.Name] != hex8(want) {
			t.Errorf("%s: stored %s, CRC-32C of its bytes %08x", w.Name, s.Tensors[w.Name], want)
		}
	}
}

func hex8(x uint32) string {
	const d = "0123456789abcdef"
	var s [8]byte
	for i := 7; i >= 0; i-- {
		s[i] = d[x&15]
		x >>= 4
	}
	return string(s[:])
}

// TestDamageIsRefused: every kind of damage is refused, naming the file.
func TestDamageIsRefused(t *testing.T) {
	orig, _ := os.ReadFile(write(t))
	lo, hi := tensorBytes(t, orig, "conv1.weight")
	_, base := header(t, orig)
	cases := map[string]func([]byte) []byte{
		"zeroed tensor": func(b []byte) []byte {
			clear(b[lo:hi])
			return b
		},
		"one flipped bit in the data": func(b []byte) []byte {
			b[lo+5] ^= 0x10 // a mantissa bit: still finite
			return b
		},
		"one flipped bit in the metadata": func(b []byte) []byte {
			i := strings.Index(string(b[:base]), `"note":"x"`) + len(`"note":"`)
			b[i] ^= 0x01 // "x" -> "y"
			return b
		},
		"truncated": func(b []byte) []byte { return b[:len(b)-5] },
		"truncated header": func(b []byte) []byte {
			return b[:base/2]
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.safetensors")
			os.WriteFile(path, damage(append([]byte(nil), orig...)), 0o644)
			_, err := Read(path)
			if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want an ErrCorrupt naming %s", err, path)
			}
		})
	}
}

// writeRaw writes a safetensors file with the library's own serializer and
// the given metadata: a file written before checksums, or a crafted one.
func writeRaw(t *testing.T, ts []Tensor, md map[string]string) string {
	t.Helper()
	views := map[string]view{}
	for _, x := range ts {
		s := make([]uint64, len(x.Shape))
		for i, d := range x.Shape {
			s[i] = uint64(d)
		}
		b := make([]byte, 4*len(x.F32))
		for i, v := range x.F32 {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		views[x.Name] = view{safetensors.F32, s, b}
	}
	raw, err := safetensors.Serialize(views, md)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "raw.safetensors")
	os.WriteFile(path, raw, 0o644)
	return path
}

func TestLegacyFileWithoutChecksums(t *testing.T) {
	w := []Tensor{{Name: "a", Shape: []int{2}, F32: []float32{1, 2}}}
	f, err := Read(writeRaw(t, w, map[string]string{"format": "old"}))
	if err != nil {
		t.Fatal(err)
	}
	if f.Verified || !reflect.DeepEqual(f.Tensors["a"].F32, w[0].F32) {
		t.Errorf("legacy file: verified %v, tensors %+v", f.Verified, f.Tensors)
	}
}

func TestNonFiniteWeightsRefused(t *testing.T) {
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		w := []Tensor{{Name: "a", Shape: []int{3}, F32: []float32{1, v, 2}}}
		// A legacy file (no checksums) is still checked to be finite.
		path := writeRaw(t, w, nil)
		if _, err := Read(path); err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "tensor a") {
			t.Errorf("%v in a legacy file: %v", v, err)
		}
		// And Write never produces such a file.
		if err := Write(filepath.Join(t.TempDir(), "n.safetensors"), w, nil, Options{}); err == nil {
			t.Errorf("%v: Write accepted a non-finite weight", v)
		}
	}
	// A NaN whose checksum matches (the weights diverged before the file
	// was written by another tool) is refused too.
	w := []Tensor{{Name: "a", Shape: []int{1}, F32: []float32{float32(math.NaN())}}}
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, math.Float32bits(w[0].F32[0]))
	md := map[string]string{"format": "x"}
	sj, _ := json.Marshal(sums{Algorithm: "crc32c", Metadata: metadataSum(md), Tensors: map[string]string{"a": hex8(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))}})
	md[ChecksumKey] = string(sj)
	if _, err := Read(writeRaw(t, w, md)); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("checksummed NaN: %v", err)
	}
}

func TestChecksumListMustMatchTensors(t *testing.T) {
	w := []Tensor{{Name: "a", Shape: []int{1}, F32: []float32{1}}}
	md := map[string]string{}
	sj, _ := json.Marshal(sums{Algorithm: "crc32c", Metadata: metadataSum(md), Tensors: map[string]string{}})
	md[ChecksumKey] = string(sj)
	if _, err := Read(writeRaw(t, w, md)); err == nil || !strings.Contains(err.Error(), "tensor a has no checksum") {
		t.Errorf("tensor without checksum: %v", err)
	}
	one := make([]byte, 4)
	binary.LittleEndian.PutUint32(one, math.Float32bits(1))
	md = map[string]string{}
	sj, _ = json.Marshal(sums{Algorithm: "crc32c", Metadata: metadataSum(md), Tensors: map[string]string{"a": hex8(crc32.Checksum(one, crc32.MakeTable(crc32.Castagnoli))), "b": "00000000"}})
	md[ChecksumKey] = string(sj)
	if _, err := Read(writeRaw(t, w, md)); err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing, e.g. b") {
		t.Errorf("checksum of a missing tensor: %v", err)
	}
}

func TestPeekMetadata(t *testing.T) {
	md, err := PeekMetadata(write(t))
	if err != nil || md["format"] != "test/1" {
		t.Errorf("got %v, %v", md, err)
	}
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("\xff\xff\xff\xff\xff\xff\xff\xffhello"), 0o644)
	if _, err := PeekMetadata(junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("junk: %v", err)
	}
}
