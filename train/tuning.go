package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/simclr-go/simclr/engine"
)

// TuningFile is the name, in a run directory, of the backend's timed
// kernel choices (engine.Tuning as JSON). A run writes it, atomically,
// before every checkpoint, so that every checkpoint's choices are on disk;
// a resumed run gives them back to its backend, so that it runs every
// kernel as the interrupted run did and continues bit for bit. A fresh run
// that finds one in its directory (copied from another run, to repeat that
// run bit for bit; or left by an attempt killed before its first
// checkpoint) starts from its choices too.
const TuningFile = "tuning.json"

// runTuning ties a backend that tunes (engine.Tuner) to its run's
// TuningFile.
type runTuning struct {
	tn    engine.Tuner
	path  string
	saved []byte // the file's content as last written or read
}

// openTuning prepares the run's tuning record, giving the backend the
// choices of the directory's TuningFile if there is one; nil when the
// backend does not tune.
func openTuning(dir string, b engine.Backend, prog *progress) (*runTuning, error) {
	path := filepath.Join(dir, TuningFile)
	tmps, _ := filepath.Glob(filepath.Join(dir, "."+TuningFile+"-*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	tn, ok := b.(engine.Tuner)
	if !ok {
		return nil, nil
	}
	r := &runTuning{tn: tn, path: path}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil // a new run, or one from before tuning was saved
	}
	if err != nil {
		return nil, fmt.Errorf("kernel tuning: %w", err)
	}
	var t engine.Tuning
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("kernel tuning %s: %w", path, err)
	}
	if err := tn.SetTuning(t); err != nil {
		return nil, fmt.Errorf("kernel tuning %s: %w", path, err)
	}
	prog.println("kernel choices: %d from %s", len(t.Choices), path)
	if now := tn.Tuning().Machine; now != t.Machine {
		prog.println("note: %s was made on %q, this is %q: its kernel choices are reused, but the run continues bit for bit only on the same machine and --threads", path, t.Machine, now)
	}
	r.saved = raw
	return r, nil
}

// save writes the backend's choices to the file if they changed since the
// last write (a first call of a new shape adds one). The trainer calls it
// before every checkpoint. Every shape of a run is seen before its first
// checkpoint (the training step's in step 1, the kNN monitor's at init);
// a shape first seen after the last checkpoint would be timed again by a
// resumed run, which could then choose differently.
func (r *runTuning) save() error {
	if r == nil {
		return nil
	}
	b, err := json.MarshalIndent(r.tn.Tuning(), "", "  ")
	if err != nil {
		return fmt.Errorf("kernel tuning: %w", err)
	}
	b = append(b, '\n')
	if bytes.Equal(b, r.saved) {
		return nil
	}
	if err := writeFileAtomic(r.path, b); err != nil {
		return fmt.Errorf("kernel tuning %s: %w", r.path, err)
	}
	r.saved = b
	return nil
}
