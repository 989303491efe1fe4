package train

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sampleTensors() []tensorEntry {
	return []tensorEntry{
		{Name: "encoder.conv1.weight", Shape: []int{2, 3, 1, 1}, F32: []float32{1, -2, 3.5, float32(math.Pi), 0, -0}},
		{Name: "head.0.bias", Shape: []int{3}, F32: []float32{1e-30, 7, -1e30}},
		{Name: "encoder.bn1.num_batches_tracked", Shape: []int{}, I64: []int64{1 << 40}},
		{Name: "optim.momentum/encoder.conv1.weight", Shape: []int{6}, F32: []float32{.1, .2, .3, .4, .5, .6}},
	}
}

// parseSafetensors is an independent reader of the format (8-byte
// little-endian header length, JSON header, raw little-endian data) used as
// the test oracle.
func parseSafetensors(t *testing.T, path string) (map[string]any, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b[:8])
	var hdr map[string]any
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatalf("header: %v", err)
	}
	return hdr, b[8+n:]
}

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Step: 12, Epoch: 1, Batch: 2, StepsPerEpoch: 10, ConfigHash: "0123abcd", Loss: 4.25, KNNTop1: -1, EpochLossSum: 0.1 + 0.2}
	path, err := writeCheckpoint(dir, sampleTensors(), meta, []byte("arch: resnet18\n"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "ckpt-00000012.safetensors" {
		t.Errorf("file name %s", filepath.Base(path))
	}

	// Oracle: decode by hand.
	hdr, body := parseSafetensors(t, path)
	md := hdr["__metadata__"].(map[string]any)
	if md["format"] != CheckpointFormat || md["config"] != "arch: resnet18\n" {
		t.Errorf("metadata %v", md)
	}
	var m Meta
	if err := json.Unmarshal([]byte(md["simclr"].(string)), &m); err != nil {
		t.Fatal(err)
	}
	if m.Step != 12 || m.Epoch != 1 || m.Batch != 2 || m.ConfigHash != "0123abcd" || m.EpochLossSum != 0.1+0.2 {
		t.Errorf("meta %+v", m)
	}
	for _, e := range sampleTensors() {
		info := hdr[e.Name].(map[string]any)
		off := info["data_offsets"].([]any)
		raw := body[int(off[0].(float64)):int(off[1].(float64))]
		if e.I64 != nil {
			if info["dtype"] != "I64" || int64(binary.LittleEndian.Uint64(raw)) != e.I64[0] {
				t.Errorf("%s: %v %v", e.Name, info, raw)
			}
			continue
		}
		if info["dtype"] != "F32" || len(raw) != 4*len(e.F32) {
			t.Fatalf("%s: header %v", e.Name, info)
		}
		for i, v := range e.F32 {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); math.Float32bits(got) != math.Float32bits(v) {
				t.Errorf("%s[%d] = %v, want %v", e.Name, i, got, v)
			}
		}
	}

	// And through our reader.
	ck, err := readCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Meta.Format != CheckpointFormat || ck.Meta.Step != 12 {
		t.Errorf("meta %+v", ck.Meta)
	}
	for _, e := range sampleTensors() {
		got := ck.Tensors[e.Name]
		if !reflect.DeepEqual(got.Shape, e.Shape) || !reflect.DeepEqual(got.F32, e.F32) || !reflect.DeepEqual(got.I64, e.I64) {
			t.Errorf("%s: got %+v want %+v", e.Name, got, e)
		}
	}
}

// failAfter fails writes once n bytes have gone through.
type failAfter struct {
	w io.Writer
	n int
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k, _ := f.w.Write(p[:f.n])
		f.n = 0
		return k, errors.New("disk full (injected)")
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func TestCheckpointFailedWriteKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	p1, err := writeCheckpoint(dir, sampleTensors(), Meta{Step: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p1)

	testWriterHook = func(w io.Writer) io.Writer { return &failAfter{w: w, n: 100} }
	defer func() { testWriterHook = nil }()
	ts := sampleTensors()
	ts[0].F32 = make([]float32, 6)
	if _, err := writeCheckpoint(dir, ts, Meta{Step: 20}, nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want the injected write error", err)
	}
	testWriterHook = nil

	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "ckpt-00000010.safetensors" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory after a failed write: %v, want only the previous checkpoint", names)
	}
	after, _ := os.ReadFile(p1)
	if string(before) != string(after) {
		t.Error("previous checkpoint changed")
	}
	if _, err := readCheckpoint(p1); err != nil {
		t.Errorf("previous checkpoint unreadable: %v", err)
	}
}

func TestCheckpointKeepLastK(t *testing.T) {
	run := t.TempDir()
	dir := filepath.Join(run, "checkpoints")
	for _, s := range []int{5, 10, 15, 20, 25} {
		if _, err := writeCheckpoint(dir, sampleTensors(), Meta{Step: s}, nil); err != nil {
			t.Fatal(err)
		}
		if err := pruneCheckpoints(dir, 2); err != nil {
			t.Fatal(err)
		}
	}
	_, steps, err := listCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(steps, []int{20, 25}) {
		t.Errorf("kept %v, want [20 25]", steps)
	}
	latest, err := LatestCheckpoint(run)
	if err != nil || filepath.Base(latest) != "ckpt-00000025.safetensors" {
		t.Errorf("latest = %s, %v", latest, err)
	}
}

func TestCheckpointCorrupt(t *testing.T) {
	dir := t.TempDir()
	p, err := writeCheckpoint(dir, sampleTensors(), Meta{Step: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	trunc := filepath.Join(dir, "trunc.safetensors")
	os.WriteFile(trunc, b[:len(b)-3], 0o644)
	if _, err := readCheckpoint(trunc); err == nil || !strings.Contains(err.Error(), trunc) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("truncated file: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.safetensors")
	os.WriteFile(garbage, []byte("hello, this is not a checkpoint"), 0o644)
	if _, err := readCheckpoint(garbage); err == nil || !strings.Contains(err.Error(), garbage) {
		t.Errorf("garbage file: %v", err)
	}
	// A valid safetensors file without our metadata.
	foreign := filepath.Join(dir, "foreign.safetensors")
	hdr := `{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	fb := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	fb = append(append(fb, hdr...), 0, 0, 128, 63)
	os.WriteFile(foreign, fb, 0o644)
	if _, err := readCheckpoint(foreign); err == nil || !strings.Contains(err.Error(), "not a simclr checkpoint") {
		t.Errorf("foreign file: %v", err)
	}
}
