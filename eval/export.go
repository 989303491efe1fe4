package eval

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/nlpodyssey/safetensors"
	"github.com/simclr-go/simclr/internal/atomicfile"
	"github.com/simclr-go/simclr/nn"
)

// ExportFormat is the "format" metadata value of an exported encoder.
const ExportFormat = "simclr-encoder/torchvision"

type stView struct {
	dt    safetensors.DType
	shape []uint64
	data  []byte
}

func (v stView) DType() safetensors.DType { return v.dt }
func (v stView) Shape() []uint64          { return v.shape }
func (v stView) Data() []byte             { return v.data }
func (v stView) DataLen() uint64          { return uint64(len(v.data)) }

// ExportEncoder writes an encoder as a safetensors file holding exactly the
// state_dict of torchvision's ResNet with fc removed: parameters
// ("conv1.weight", "layer1.0.bn1.weight", ...), BN running statistics
// ("...running_mean", "...running_var") as float32 and BN
// "...num_batches_tracked" as int64 scalars, so that
// model.load_state_dict(..., strict=True) accepts it once model.fc is
// replaced by nn.Identity(). meta goes into the file's __metadata__ next to
// "format". The file is written atomically.
func ExportEncoder(path string, enc *nn.ResNet, meta map[string]string) error {
	views := map[string]stView{}
	add := func(name string, v stView) error {
		if _, dup := views[name]; dup {
			return fmt.Errorf("export %s: duplicate tensor %s", path, name)
		}
		views[name] = v
		return nil
	}
	f32 := func(name string, shape []int, x []float32) error {
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		s := make([]uint64, len(shape))
		for i, d := range shape {
			s[i] = uint64(d)
		}
		return add(name, stView{safetensors.F32, s, b})
	}
	for _, p := range enc.Params() {
		if err := f32(p.Name, p.T.Shape(), p.T.Data()); err != nil {
			return err
		}
	}
	for _, b := range enc.Buffers() {
		if err := f32(b.Name, b.T.Shape(), b.T.Data()); err != nil {
			return err
		}
	}
	for _, c := range enc.Counters() {
		if err := add(c.Name, stView{safetensors.I64, []uint64{}, binary.LittleEndian.AppendUint64(nil, uint64(*c.N))}); err != nil {
			return err
		}
	}
	md := map[string]string{"format": ExportFormat}
	for k, v := range meta {
		md[k] = v
	}
	f, err := atomicfile.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("export %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := safetensors.SerializeToWriter(views, md, bw); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fail(err)
	}
	return nil
}
