package nn

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
)

// A minimal safetensors (F32 only) reader and writer for the golden files,
// so the Python side needs nothing beyond numpy and torch.

type stEntry struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets [2]int `json:"data_offsets"`
}

type stTensor struct {
	shape []int
	data  []float32
}

func writeST(path string, ts map[string]stTensor) error {
	names := make([]string, 0, len(ts))
	for n := range ts {
		names = append(names, n)
	}
	sort.Strings(names)
	hdr := map[string]stEntry{}
	off := 0
	for _, n := range names {
		size := 4 * len(ts[n].data)
		hdr[n] = stEntry{DType: "F32", Shape: ts[n].shape, Offsets: [2]int{off, off + size}}
		off += size
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	buf := make([]byte, 8, 8+len(h)+off)
	binary.LittleEndian.PutUint64(buf, uint64(len(h)))
	buf = append(buf, h...)
	for _, n := range names {
		for _, v := range ts[n].data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	return os.WriteFile(path, buf, 0o644)
}

func readST(path string) (map[string]stTensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 8 {
		return nil, fmt.Errorf("%s: too short for a safetensors file", path)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n > uint64(len(raw)-8) {
		return nil, fmt.Errorf("%s: header length %d exceeds the file", path, n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	body := raw[8+n:]
	out := map[string]stTensor{}
	for name, r := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e stEntry
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		if e.DType != "F32" {
			return nil, fmt.Errorf("%s: %s: dtype %s, want F32", path, name, e.DType)
		}
		cnt := 1
		for _, d := range e.Shape {
			cnt *= d
		}
		if e.Offsets[1]-e.Offsets[0] != 4*cnt || e.Offsets[0] < 0 || e.Offsets[1] > len(body) {
			return nil, fmt.Errorf("%s: %s: bad offsets %v for shape %v", path, name, e.Offsets, e.Shape)
		}
		d := make([]float32, cnt)
		for i := range d {
			d[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[e.Offsets[0]+4*i:]))
		}
		out[name] = stTensor{e.Shape, d}
	}
	return out, nil
}
