package eval

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/stfile"
)

// ExportFormat is the "format" metadata value of an exported encoder.
const ExportFormat = "simclr-encoder/torchvision"

// encoderTensors lists the encoder's state_dict in torchvision's order:
// parameters, BN running statistics, then the num_batches_tracked counters
// (int64 scalars). The slices share the encoder's memory.
func encoderTensors(enc nn.Net) []stfile.Tensor {
	var ts []stfile.Tensor
	for _, p := range enc.Params() {
		ts = append(ts, stfile.Tensor{Name: p.Name, Shape: p.T.Shape(), F32: p.T.Data()})
	}
	for _, b := range enc.Buffers() {
		ts = append(ts, stfile.Tensor{Name: b.Name, Shape: b.T.Shape(), F32: b.T.Data()})
	}
	for _, c := range enc.Counters() {
		ts = append(ts, stfile.Tensor{Name: c.Name, Shape: []int{}, I64: []int64{*c.N}})
	}
	return ts
}

// ExportEncoder writes an encoder as a safetensors file holding exactly the
// state_dict of torchvision's ResNet with fc removed: parameters
// ("conv1.weight", "layer1.0.bn1.weight", ...), BN running statistics
// ("...running_mean", "...running_var") as float32 and BN
// "...num_batches_tracked" as int64 scalars, so that
// model.load_state_dict(..., strict=True) accepts it once model.fc is
// replaced by nn.Identity(). meta goes into the file's __metadata__ next to
// "format" and the checksums (stfile.ChecksumKey, which PyTorch ignores).
// The file is written atomically.
func ExportEncoder(path string, enc nn.Net, meta map[string]string) error {
	md := map[string]string{"format": ExportFormat}
	for k, v := range meta {
		md[k] = v
	}
	if err := stfile.Write(path, encoderTensors(enc), md, stfile.Options{}); err != nil {
		return fmt.Errorf("export %w", err)
	}
	return nil
}

// Export is an exported encoder read back and verified.
type Export struct {
	Path    string
	Meta    map[string]string // the file's metadata (format, arch, width, stem, image_size, mean, std, ...)
	Encoder nn.Encoder
	// Verified is false for a file written before checksums were stored.
	Verified bool
}

// ReadExport reads an encoder written by ExportEncoder, verifying its
// checksums and that every weight is finite (stfile.Read), and rebuilds
// the encoder its metadata describes with exactly its tensors.
func ReadExport(path string) (*Export, error) {
	f, err := stfile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("exported encoder %w", err)
	}
	md := f.Metadata
	if md["format"] != ExportFormat {
		return nil, fmt.Errorf("exported encoder %s: metadata format %q, want %q (a file written by 'simclr export')", path, md["format"], ExportFormat)
	}
	width, err := strconv.ParseFloat(md["width"], 64)
	if err != nil {
		return nil, fmt.Errorf("exported encoder %s: metadata width %q: %v", path, md["width"], err)
	}
	in := 0
	if s, ok := md["in_channels"]; ok {
		if in, err = strconv.Atoi(s); err != nil {
			return nil, fmt.Errorf("exported encoder %s: metadata in_channels %q: %v", path, s, err)
		}
	}
	enc, err := nn.NewEncoder(nn.ResNetConfig{Arch: md["arch"], Width: width, Stem: md["stem"], InChannels: in})
	if err != nil {
		return nil, fmt.Errorf("exported encoder %s: %w", path, err)
	}
	want := map[string]bool{}
	counters := map[string]*int64{}
	for _, c := range enc.Counters() {
		counters[c.Name] = c.N
	}
	for _, e := range encoderTensors(enc) {
		want[e.Name] = true
		t, ok := f.Tensors[e.Name]
		if !ok {
			return nil, fmt.Errorf("exported encoder %s: tensor %s is missing for %s x%g", path, e.Name, md["arch"], width)
		}
		if e.I64 != nil {
			if len(t.I64) != 1 {
				return nil, fmt.Errorf("exported encoder %s: tensor %s: want an int64 scalar, got shape %v", path, e.Name, t.Shape)
			}
			*counters[e.Name] = t.I64[0]
			continue
		}
		if t.F32 == nil || fmt.Sprint(t.Shape) != fmt.Sprint(e.Shape) {
			return nil, fmt.Errorf("exported encoder %s: tensor %s has shape %v, %s x%g wants %v", path, e.Name, t.Shape, md["arch"], width, e.Shape)
		}
		copy(e.F32, t.F32)
	}
	var extra []string
	for _, n := range f.Names {
		if !want[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, fmt.Errorf("exported encoder %s: %d tensors %s x%g does not have, e.g. %s", path, len(extra), md["arch"], width, extra[0])
	}
	return &Export{Path: path, Meta: md, Encoder: enc, Verified: f.Verified}, nil
}
