package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/simclr-go/simclr/internal/atomicfile"
	"github.com/simclr-go/simclr/stfile"
)

// CheckpointFormat is the value of the "format" metadata key of every
// checkpoint this package writes.
const CheckpointFormat = "simclr-checkpoint/1"

// Meta is the training state stored as JSON under the "simclr" key of a
// checkpoint's safetensors __metadata__. Together with the tensors and the
// resolved config, stored as YAML under the "config" key, it is everything
// needed to continue the run exactly where it stopped; the config alone
// rebuilds the model without the run directory. Meta holds no config
// field: readers take the architecture, seed, image size and so on from
// the embedded config. Checkpoints written before December 2026 also copy
// arch, width, stem, head, head_hidden, head_out, optimizer, image_size and
// seed into Meta; decoding ignores those keys (their embedded config holds
// the same values).
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
	// The (Epoch, Batch) position and the config's seed fully determine the
	// loader's and the augmentations' random state (both are derived from
	// (seed, epoch)).
	//
	// ConfigHash is the embedded config's Hash when it was written
	// (informational: resume compares the configs themselves).
	ConfigHash string `json:"config_hash"`
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
type tensorEntry = stfile.Tensor

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

// LatestCheckpointStep returns the step of the newest checkpoint of a run
// directory, read from its file name (the file is not opened, so a
// checkpoint being written or replaced meanwhile does no harm); ok is false
// when the run has none yet.
func LatestCheckpointStep(rundir string) (step int, ok bool, err error) {
	_, steps, err := listCheckpoints(filepath.Join(rundir, "checkpoints"))
	if err != nil || len(steps) == 0 {
		return 0, false, err
	}
	return steps[len(steps)-1], true, nil
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

// testWriterHook lets tests inject a failing writer into checkpoint writes.
var testWriterHook func(io.Writer) io.Writer

// writeCheckpoint writes the tensors and metadata to dir/ckpt-<step>.safetensors
// atomically and with checksums (stfile.Write), so a crash at any point
// leaves either the old set of checkpoints or the new one, and a later
// change to the file's bytes is detected when it is read.
func writeCheckpoint(dir string, ts []tensorEntry, meta Meta, configYAML []byte) (string, error) {
	meta.Format = CheckpointFormat
	mj, err := json.Marshal(meta)
	if err != nil {
		return "", fmt.Errorf("checkpoint: metadata: %w", err)
	}
	md := map[string]string{"format": CheckpointFormat, "simclr": string(mj), "config": string(configYAML)}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	final := filepath.Join(dir, checkpointName(meta.Step))
	if err := stfile.Write(final, ts, md, stfile.Options{Wrap: testWriterHook}); err != nil {
		return "", fmt.Errorf("checkpoint %w (previous checkpoints kept)", err)
	}
	return final, nil
}

// writeFileAtomic writes small files (config.yaml, plots) with the same
// temp-fsync-rename protocol as checkpoints.
func writeFileAtomic(path string, b []byte) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// checkpointFile is a checkpoint read into memory and verified.
type checkpointFile struct {
	Path    string
	Meta    Meta
	Config  []byte // resolved config, YAML
	Tensors map[string]tensorEntry
	Names   []string // in file order
	// Verified is false for a checkpoint written before checksums were
	// stored: its bytes cannot be verified (its weights were still
	// checked to be finite).
	Verified bool
}

// readCheckpoint reads and verifies a checkpoint file. Every problem is
// reported with the file name: truncation, damaged bytes (checksums), a
// non-finite weight, a bad header, an unknown format, a tensor of an
// unexpected dtype. Damage wraps stfile.ErrCorrupt.
func readCheckpoint(path string) (*checkpointFile, error) {
	f, err := stfile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %w", err)
	}
	return checkpointOf(path, f)
}

// parseCheckpoint is readCheckpoint on the file's bytes, as received from
// rank 0 by the other ranks of a data-parallel run (path names it in
// errors); the bytes are verified the same way.
func parseCheckpoint(path string, b []byte) (*checkpointFile, error) {
	f, err := stfile.Parse(path, b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %w", err)
	}
	return checkpointOf(path, f)
}

// checkpointOf checks that a verified safetensors file is a simclr
// checkpoint and decodes its metadata.
func checkpointOf(path string, f *stfile.File) (*checkpointFile, error) {
	kv := f.Metadata
	if kv["format"] != CheckpointFormat {
		return nil, fmt.Errorf("checkpoint %s: not a simclr checkpoint (metadata format %q, want %q)", path, kv["format"], CheckpointFormat)
	}
	ck := &checkpointFile{Path: path, Config: []byte(kv["config"]), Tensors: f.Tensors, Names: f.Names, Verified: f.Verified}
	if err := json.Unmarshal([]byte(kv["simclr"]), &ck.Meta); err != nil {
		return nil, fmt.Errorf("checkpoint %s: bad simclr metadata: %v", path, err)
	}
	return ck, nil
}

// CorruptCheckpointError is the refusal of a run's newest checkpoint: it
// names the file, says what is wrong, and lists the older checkpoints of
// the run that do verify (newest first), one of which the user can pick.
type CorruptCheckpointError struct {
	Run   string
	Path  string
	Err   error
	Valid []string // older checkpoints that verify, newest first
	Hint  string   // how to pick one, e.g. "resume from one with --resume-from PATH"
}

func (e *CorruptCheckpointError) Error() string {
	s := fmt.Sprintf("%v; it is the newest checkpoint of run %s", e.Err, e.Run)
	if len(e.Valid) == 0 {
		return s + ", and no older checkpoint of the run verifies either"
	}
	s += "; older checkpoints that verify: " + strings.Join(e.Valid, ", ")
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

func (e *CorruptCheckpointError) Unwrap() error { return e.Err }

// newestCheckpoint reads and verifies the newest checkpoint of a run. When
// it is damaged the error is a *CorruptCheckpointError listing the older
// checkpoints that verify.
func newestCheckpoint(rundir string) (*checkpointFile, error) {
	var path string
	var err error
	// A writer beside us may prune the file we listed before we open it
	// (a newer one replaced it): list again.
	for range 3 {
		if path, err = LatestCheckpoint(rundir); err != nil {
			return nil, err
		}
		var ck *checkpointFile
		if ck, err = readCheckpoint(path); err == nil {
			return ck, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	paths, steps, _ := listCheckpoints(filepath.Dir(path))
	step := -1
	for i, p := range paths {
		if p == path {
			step = steps[i]
		}
	}
	var older []string
	for i, p := range paths {
		if steps[i] < step {
			older = append(older, p)
		}
	}
	return nil, &CorruptCheckpointError{Run: rundir, Path: path, Err: err, Valid: verifiedCheckpoints(older)}
}

// verifiedCheckpoints returns the paths (sorted by step) that read and
// verify, newest first.
func verifiedCheckpoints(paths []string) []string {
	var ok []string
	for i := len(paths) - 1; i >= 0; i-- {
		if _, err := readCheckpoint(paths[i]); err == nil {
			ok = append(ok, paths[i])
		}
	}
	return ok
}

// resumeCheckpoint is the checkpoint a resumed run of rundir continues
// from: the newest, or from (--resume-from) when set. from must be a
// checkpoint of this run (in RUNDIR/checkpoints) and verify; the
// configuration is checked against it by the caller. later lists the
// run's checkpoints after from's step: they belong to the abandoned
// continuation.
func resumeCheckpoint(rundir, from string) (ck *checkpointFile, later []string, err error) {
	if from == "" {
		ck, err := newestCheckpoint(rundir)
		var ce *CorruptCheckpointError
		if errors.As(err, &ce) && len(ce.Valid) > 0 {
			ce.Hint = "resume from one of them with --resume-from PATH"
		}
		return ck, nil, err
	}
	ckdir := filepath.Join(rundir, "checkpoints")
	if !checkpointRE.MatchString(filepath.Base(from)) {
		return nil, nil, fmt.Errorf("--resume-from %s: not a checkpoint file name (want %s/ckpt-<step>.safetensors)", from, ckdir)
	}
	fst, err := os.Stat(filepath.Dir(from))
	if err != nil {
		return nil, nil, fmt.Errorf("--resume-from %s: %w", from, err)
	}
	dst, err := os.Stat(ckdir)
	if err != nil || !os.SameFile(fst, dst) {
		return nil, nil, fmt.Errorf("--resume-from %s: not a checkpoint of the run %s (it must be in %s)", from, rundir, ckdir)
	}
	if ck, err = readCheckpoint(from); err != nil {
		return nil, nil, fmt.Errorf("--resume-from: %w", err)
	}
	paths, steps, err := listCheckpoints(ckdir)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoints of %s: %w", rundir, err)
	}
	for i, p := range paths {
		if steps[i] > ck.Meta.Step {
			later = append(later, p)
		}
	}
	return ck, later, nil
}

// supersededDir holds the checkpoints of a continuation abandoned by
// --resume-from, kept for the user rather than deleted.
const supersededDir = "superseded"

// setAsideCheckpoints moves the given checkpoints into
// CKDIR/superseded/, so that neither resume nor pruning mistakes them for
// the new continuation's. Nothing is deleted.
func setAsideCheckpoints(ckdir string, paths []string) (string, error) {
	if len(paths) == 0 {
		return "", nil
	}
	dst := filepath.Join(ckdir, supersededDir)
	if err := os.MkdirAll(dst, 0o777); err != nil {
		return "", err
	}
	for _, p := range paths {
		to := filepath.Join(dst, filepath.Base(p))
		if _, err := os.Stat(to); err == nil {
			to = fmt.Sprintf("%s.%d", to, time.Now().UnixNano())
		}
		if err := os.Rename(p, to); err != nil {
			return "", err
		}
	}
	return dst, atomicfile.SyncDir(ckdir)
}

// lastGoodCheckpoint is the newest checkpoint of the run, at most at step,
// that verifies now, for messages that send the user back to it.
func (t *trainer) lastGoodCheckpoint() string {
	paths, steps, _ := listCheckpoints(t.ckdir)
	var cands []string
	for i, p := range paths {
		if steps[i] <= t.step {
			cands = append(cands, p)
		}
	}
	if ok := verifiedCheckpoints(cands); len(ok) > 0 {
		return ok[0]
	}
	return ""
}
