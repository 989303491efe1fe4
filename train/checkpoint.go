package train

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"unsafe"

	"github.com/nlpodyssey/safetensors"

	"github.com/simclr-go/simclr/internal/atomicfile"
)

// CheckpointFormat is the value of the "format" metadata key of every
// checkpoint this package writes.
const CheckpointFormat = "simclr-checkpoint/1"

// Meta is the training state stored as JSON under the "simclr" key of a
// checkpoint's safetensors __metadata__. Together with the tensors it is
// everything needed to continue the run exactly where it stopped. The
// resolved config is stored as YAML under the "config" key, so a checkpoint
// can rebuild its model without the run directory.
type Meta struct {
	Format string `json:"format"`
	// Step counts the optimizer steps taken.
	Step int `json:"step"`
	// Epoch is the number of completed epochs and Batch the number of
	// batches already consumed in epoch Epoch (0-based): the run continues
	// with batch Batch of epoch Epoch.
	Epoch         int `json:"epoch"`
	Batch         int `json:"batch"`
	StepsPerEpoch int `json:"steps_per_epoch"`
	// Seed and the (Epoch, Batch) position fully determine the loader's and
	// the augmentations' random state (both are derived from (seed, epoch)).
	Seed       int64   `json:"seed"`
	ConfigHash string  `json:"config_hash"`
	Arch       string  `json:"arch"`
	Width      float64 `json:"width"`
	Stem       string  `json:"stem"`
	Head       string  `json:"head"`
	HeadHidden int     `json:"head_hidden"`
	HeadOut    int     `json:"head_out"`
	Optimizer  string  `json:"optimizer"`
	ImageSize  int     `json:"image_size"`
	// Loss is the last step's loss, KNNTop1 the last measured kNN accuracy
	// (-1 when none); informational.
	Loss    float64 `json:"loss"`
	KNNTop1 float64 `json:"knn_top1"`
	// WallS is the training wall time so far, so a resumed run reports the
	// total.
	WallS float64 `json:"wall_s"`
	// EpochLossSum and EpochLossN accumulate the losses of the epoch in
	// progress, so a resumed run reports the same epoch mean.
	EpochLossSum float64 `json:"epoch_loss_sum"`
	EpochLossN   int     `json:"epoch_loss_n"`
}

// tensorEntry is one named tensor of a checkpoint: float32 data, or an
// int64 scalar (BN num_batches_tracked).
type tensorEntry struct {
	Name  string
	Shape []int
	F32   []float32
	I64   []int64
}

// checkpointName is the file name of the checkpoint at step.
func checkpointName(step int) string { return fmt.Sprintf("ckpt-%08d.safetensors", step) }

var checkpointRE = regexp.MustCompile(`^ckpt-(\d{8,})\.safetensors$`)

// listCheckpoints returns the checkpoint files in dir sorted by step.
func listCheckpoints(dir string) ([]string, []int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	type ck struct {
		path string
		step int
	}
	var cks []ck
	for _, e := range ents {
		m := checkpointRE.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		s, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		cks = append(cks, ck{filepath.Join(dir, e.Name()), s})
	}
	sort.Slice(cks, func(i, j int) bool { return cks[i].step < cks[j].step })
	paths := make([]string, len(cks))
	steps := make([]int, len(cks))
	for i, c := range cks {
		paths[i], steps[i] = c.path, c.step
	}
	return paths, steps, nil
}

// LatestCheckpoint returns the path of the newest checkpoint of a run
// directory, or an error saying there is none.
func LatestCheckpoint(rundir string) (string, error) {
	dir := filepath.Join(rundir, "checkpoints")
	paths, _, err := listCheckpoints(dir)
	if err != nil {
		return "", fmt.Errorf("checkpoints of %s: %w", rundir, err)
	}
	if len(paths) == 0 {
		return "", fmt.Errorf("run %s has no checkpoints (no %s/ckpt-*.safetensors)", rundir, dir)
	}
	return paths[len(paths)-1], nil
}

// pruneCheckpoints deletes all but the newest keep checkpoints in dir.
func pruneCheckpoints(dir string, keep int) error {
	paths, _, err := listCheckpoints(dir)
	if err != nil {
		return err
	}
	for i := 0; i < len(paths)-keep; i++ {
		if err := os.Remove(paths[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove old checkpoint: %w", err)
		}
	}
	return nil
}

// removeStaleTemps deletes temporary files left by an interrupted write.
func removeStaleTemps(dir string) {
	tmps, _ := filepath.Glob(filepath.Join(dir, ".ckpt-*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
}

// view adapts a tensorEntry to safetensors.View without copying.
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

// testWriterHook lets tests inject a failing writer into checkpoint writes.
var testWriterHook func(io.Writer) io.Writer

// writeCheckpoint writes the tensors and metadata to dir/ckpt-<step>.safetensors
// atomically: a temporary file in the same directory is written, flushed to
// disk, renamed over the final name, and the directory is synced, so a crash
// at any point leaves either the old set of checkpoints or the new one.
func writeCheckpoint(dir string, ts []tensorEntry, meta Meta, configYAML []byte) (string, error) {
	meta.Format = CheckpointFormat
	views := make(map[string]view, len(ts))
	for _, t := range ts {
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		if _, dup := views[t.Name]; dup {
			return "", fmt.Errorf("checkpoint: duplicate tensor name %q", t.Name)
		}
		if t.I64 != nil {
			views[t.Name] = view{safetensors.I64, shape, i64Bytes(t.I64)}
		} else {
			views[t.Name] = view{safetensors.F32, shape, f32Bytes(t.F32)}
		}
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return "", fmt.Errorf("checkpoint: metadata: %w", err)
	}
	md := map[string]string{"format": CheckpointFormat, "simclr": string(mj), "config": string(configYAML)}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	final := filepath.Join(dir, checkpointName(meta.Step))
	f, err := atomicfile.CreateTemp(dir, ".ckpt-*.tmp")
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmp)
		return "", fmt.Errorf("checkpoint %s: %w (previous checkpoints kept)", final, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var w io.Writer = bw
	if testWriterHook != nil {
		w = testWriterHook(w)
	}
	if err := safetensors.SerializeToWriter(views, md, w); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("checkpoint %s: sync dir: %w", final, err)
	}
	return final, nil
}

func syncDir(dir string) error {
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

// writeFileAtomic writes small files (config.yaml) with the same
// temp-fsync-rename protocol as checkpoints.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := atomicfile.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// checkpointFile is a checkpoint read into memory.
type checkpointFile struct {
	Path    string
	Meta    Meta
	Config  []byte // resolved config, YAML
	Tensors map[string]tensorEntry
	Names   []string // in file order
}

// readCheckpoint reads and validates a checkpoint file. Every problem is
// reported with the file name: truncation, a bad header, an unknown format,
// a tensor of an unexpected dtype.
func readCheckpoint(path string) (*checkpointFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	st, err := safetensors.Deserialize(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: corrupt or truncated safetensors file: %v", path, err)
	}
	_, md, err := safetensors.ReadMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: corrupt header: %v", path, err)
	}
	kv := md.Metadata()
	if kv["format"] != CheckpointFormat {
		return nil, fmt.Errorf("checkpoint %s: not a simclr checkpoint (metadata format %q, want %q)", path, kv["format"], CheckpointFormat)
	}
	ck := &checkpointFile{Path: path, Config: []byte(kv["config"]), Tensors: map[string]tensorEntry{}}
	if err := json.Unmarshal([]byte(kv["simclr"]), &ck.Meta); err != nil {
		return nil, fmt.Errorf("checkpoint %s: bad simclr metadata: %v", path, err)
	}
	for _, ntv := range st.Tensors() {
		tv := ntv.TensorView
		shape := make([]int, len(tv.Shape()))
		for i, d := range tv.Shape() {
			shape[i] = int(d)
		}
		e := tensorEntry{Name: ntv.Name, Shape: shape}
		data := tv.Data()
		switch tv.DType() {
		case safetensors.F32:
			e.F32 = make([]float32, len(data)/4)
			for i := range e.F32 {
				e.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
			}
		case safetensors.I64:
			e.I64 = make([]int64, len(data)/8)
			for i := range e.I64 {
				e.I64[i] = int64(binary.LittleEndian.Uint64(data[8*i:]))
			}
		default:
			return nil, fmt.Errorf("checkpoint %s: tensor %s has dtype %v, want F32 or I64", path, ntv.Name, tv.DType())
		}
		ck.Tensors[ntv.Name] = e
		ck.Names = append(ck.Names, ntv.Name)
	}
	return ck, nil
}
