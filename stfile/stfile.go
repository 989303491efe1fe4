// Package stfile writes and reads the safetensors files simclr keeps
// weights in (training checkpoints and exported encoders) so that a file
// proves its own integrity.
//
// Write stores a CRC-32C (Castagnoli) of every tensor's bytes, and one of
// the other metadata, as JSON under the metadata key ChecksumKey, and
// writes the file atomically (atomicfile.Write: temporary file in the same
// directory, fsync, rename, fsync of the directory).
//
// Read refuses a file whose bytes do not match their checksums (a zeroed
// tensor, a flipped bit, a truncated file), a file whose checksum list and
// tensors disagree, and any float32 weight that is NaN or infinite, before
// a caller can use the weights. A file written before checksums existed
// has no ChecksumKey: it is read (finiteness still checked) with Verified
// false, so the caller can warn that it cannot be verified.
//
// CRC-32C detects every burst error of up to 32 bits and any other random
// corruption with probability 1-2^-32 per tensor; it guards against
// accidents (disk, copy, truncation, a stray write), not against tampering.
package stfile

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sort"
	"unsafe"

	"github.com/nlpodyssey/safetensors"
	"github.com/simclr-go/simclr/internal/atomicfile"
)

// ChecksumKey is the metadata key holding the checksums (JSON, see sums).
const ChecksumKey = "simclr_checksums"

// ErrCorrupt is wrapped by every error of Read that means the file's
// content is damaged or its weights are not finite (as opposed to a file
// that cannot be opened).
var ErrCorrupt = errors.New("corrupt")

// Tensor is one named tensor: float32 data, or int64 data (BN
// num_batches_tracked). Exactly one of F32 and I64 is used.
type Tensor struct {
	Name  string
	Shape []int
	F32   []float32
	I64   []int64
}

// File is a safetensors file read and verified by Read.
type File struct {
	Path     string
	Metadata map[string]string // without ChecksumKey
	Tensors  map[string]Tensor
	Names    []string // in file order
	// Verified is true when the file carried checksums and they all
	// matched; false for a file written before simclr stored them.
	Verified bool
}

// sums is the JSON stored under ChecksumKey.
type sums struct {
	Algorithm string            `json:"algorithm"` // "crc32c"
	Metadata  string            `json:"metadata"`  // of the other metadata, see metadataSum
	Tensors   map[string]string `json:"tensors"`   // name -> 8 hex digits
}

const algorithm = "crc32c"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func sumHex(b []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli))
}

// metadataSum checksums the metadata other than ChecksumKey, in key order,
// each key and value followed by a NUL (neither holds one in practice; the
// length prefixes make the encoding unambiguous anyway).
func metadataSum(md map[string]string) string {
	keys := make([]string, 0, len(md))
	for k := range md {
		if k != ChecksumKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := crc32.New(castagnoli)
	var n [8]byte
	for _, k := range keys {
		for _, s := range []string{k, md[k]} {
			binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			io.WriteString(h, s)
		}
	}
	return fmt.Sprintf("%08x", h.Sum32())
}

// view adapts a tensor's bytes to safetensors.View without copying.
type view struct {
	dt    safetensors.DType
	shape []uint64
	data  []byte
}

func (v view) DType() safetensors.DType { return v.dt }
func (v view) Shape() []uint64          { return v.shape }
func (v view) Data() []byte             { return v.data }
func (v view) DataLen() uint64          { return uint64(len(v.data)) }

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// f32Bytes is x's little-endian bytes, sharing x's memory where the host
// is little-endian.
func f32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
	}
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func i64Bytes(x []int64) []byte {
	b := make([]byte, 8*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return b
}

// Options tunes Write.
type Options struct {
	// Wrap, when set, wraps the file writer (tests inject failing writers).
	Wrap func(io.Writer) io.Writer
}

// Write writes the tensors and metadata to path atomically, with the
// checksums added under ChecksumKey. The float32 weights must be finite: a
// file that Read would refuse is never written.
func Write(path string, ts []Tensor, md map[string]string, opt Options) error {
	views := make(map[string]view, len(ts))
	s := sums{Algorithm: algorithm, Tensors: make(map[string]string, len(ts))}
	for _, t := range ts {
		if _, dup := views[t.Name]; dup {
			return fmt.Errorf("%s: duplicate tensor name %q", path, t.Name)
		}
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		var v view
		if t.I64 != nil {
			v = view{safetensors.I64, shape, i64Bytes(t.I64)}
		} else {
			if i, bad := firstNonFinite(t.F32); bad {
				return fmt.Errorf("%s: tensor %s holds %v at index %d; refusing to write non-finite weights", path, t.Name, t.F32[i], i)
			}
			v = view{safetensors.F32, shape, f32Bytes(t.F32)}
		}
		views[t.Name] = v
		s.Tensors[t.Name] = sumHex(v.data)
	}
	all := make(map[string]string, len(md)+1)
	for k, v := range md {
		if k == ChecksumKey {
			return fmt.Errorf("%s: metadata key %s is reserved", path, ChecksumKey)
		}
		all[k] = v
	}
	s.Metadata = metadataSum(all)
	sj, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("%s: checksums: %w", path, err)
	}
	all[ChecksumKey] = string(sj)
	return atomicfile.Write(path, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		var w io.Writer = bw
		if opt.Wrap != nil {
			w = opt.Wrap(w)
		}
		if err := safetensors.SerializeToWriter(views, all, w); err != nil {
			return err
		}
		return bw.Flush()
	})
}

func firstNonFinite(x []float32) (int, bool) {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i, true
		}
	}
	return 0, false
}

// UnverifiedWarning is the one line to show when a file without checksums
// (File.Verified false) is used.
func UnverifiedWarning(path string) string {
	return fmt.Sprintf("warning: %s has no checksums (written before simclr stored them): its data cannot be verified, only checked to be finite", path)
}

// Read reads path, verifies its checksums (when it has them) and that every
// float32 value is finite, and decodes its tensors. Every problem is
// reported with the file name; damage wraps ErrCorrupt.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse is Read on the file's bytes b (read once, e.g. by one process and
// broadcast to others); path names the file in errors.
func Parse(path string, b []byte) (*File, error) {
	corrupt := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: %s", path, ErrCorrupt, fmt.Sprintf(format, a...))
	}
	st, err := safetensors.Deserialize(b)
	if err != nil {
		return nil, corrupt("not a complete safetensors file (truncated or damaged): %v", err)
	}
	_, md, err := safetensors.ReadMetadata(b)
	if err != nil {
		return nil, corrupt("bad header: %v", err)
	}
	f := &File{Path: path, Metadata: map[string]string{}, Tensors: map[string]Tensor{}}
	for k, v := range md.Metadata() {
		f.Metadata[k] = v
	}
	var want *sums
	if sj, ok := f.Metadata[ChecksumKey]; ok {
		want = new(sums)
		if err := json.Unmarshal([]byte(sj), want); err != nil {
			return nil, corrupt("unreadable checksums: %v", err)
		}
		if want.Algorithm != algorithm {
			return nil, corrupt("checksum algorithm %q, want %q", want.Algorithm, algorithm)
		}
		if got := metadataSum(f.Metadata); got != want.Metadata {
			return nil, corrupt("the metadata fails its CRC-32C (stored %s, computed %s)", want.Metadata, got)
		}
		delete(f.Metadata, ChecksumKey)
	}
	for _, ntv := range st.Tensors() {
		tv := ntv.TensorView
		data := tv.Data()
		if want != nil {
			ws, ok := want.Tensors[ntv.Name]
			if !ok {
				return nil, corrupt("tensor %s has no checksum", ntv.Name)
			}
			if got := sumHex(data); got != ws {
				return nil, corrupt("tensor %s fails its CRC-32C (stored %s, computed %s): its bytes changed after writing", ntv.Name, ws, got)
			}
		}
		shape := make([]int, len(tv.Shape()))
		for i, d := range tv.Shape() {
			shape[i] = int(d)
		}
		t := Tensor{Name: ntv.Name, Shape: shape}
		switch tv.DType() {
		case safetensors.F32:
			t.F32 = make([]float32, len(data)/4)
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
			}
			if i, bad := firstNonFinite(t.F32); bad {
				return nil, corrupt("tensor %s holds %v at index %d (diverged weights or damage)", ntv.Name, t.F32[i], i)
			}
		case safetensors.I64:
			t.I64 = make([]int64, len(data)/8)
			for i := range t.I64 {
				t.I64[i] = int64(binary.LittleEndian.Uint64(data[8*i:]))
			}
		default:
			return nil, fmt.Errorf("%s: tensor %s has dtype %v, want F32 or I64", path, ntv.Name, tv.DType())
		}
		f.Tensors[ntv.Name] = t
		f.Names = append(f.Names, ntv.Name)
	}
	if want != nil {
		if len(want.Tensors) != len(f.Tensors) {
			var missing []string
			for n := range want.Tensors {
				if _, ok := f.Tensors[n]; !ok {
					missing = append(missing, n)
				}
			}
			sort.Strings(missing)
			return nil, corrupt("%d tensors listed in the checksums are missing, e.g. %s", len(missing), missing[0])
		}
		f.Verified = true
	}
	return f, nil
}

// maxHeader bounds the JSON header PeekMetadata reads (the safetensors
// format's own limit is 100 MB).
const maxHeader = 100 << 20

// PeekMetadata reads only the header of a safetensors file and returns its
// __metadata__ (unverified), to tell what kind of file it is before
// reading it whole.
func PeekMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n [8]byte
	if _, err := io.ReadFull(f, n[:]); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors file: %v", path, err)
	}
	size := binary.LittleEndian.Uint64(n[:])
	if size > maxHeader {
		return nil, fmt.Errorf("%s: not a safetensors file (header length %d)", path, size)
	}
	hdr := make([]byte, size)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors file (truncated header): %v", path, err)
	}
	var h struct {
		Metadata map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(hdr, &h); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors file (header: %v)", path, err)
	}
	return h.Metadata, nil
}
