package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// Record is one line of RUNDIR/metrics.jsonl. Type is "step" for a logged
// training step and "epoch" for the end of an epoch (epoch 0 is the kNN
// measurement at random initialisation, before any step).
type Record struct {
	Type  string `json:"type"`
	Step  int    `json:"step"`
	Epoch int    `json:"epoch"`

	// Step records. Epoch is the 1-based epoch the step belongs to.
	Loss           *float64 `json:"loss,omitempty"` // epoch records: mean over the epoch
	ContrastiveAcc *float64 `json:"contrastive_acc,omitempty"`
	LR             *float64 `json:"lr,omitempty"`
	ImgS           *float64 `json:"img_s,omitempty"`     // source images per second since the last record
	DataWait       *float64 `json:"data_wait,omitempty"` // share of that time spent waiting for batches
	// Data-parallel runs: the number of processes, and the mean time per
	// step spent in their collectives since the last record.
	WorldSize int      `json:"world_size,omitempty"`
	CommS     *float64 `json:"comm_s,omitempty"`

	// Epoch records.
	KNNTop1 *float64 `json:"knn_top1,omitempty"`
	KNNTop5 *float64 `json:"knn_top5,omitempty"`
	KNNS    *float64 `json:"knn_s,omitempty"`   // seconds spent in the kNN monitor
	EpochS  *float64 `json:"epoch_s,omitempty"` // seconds of training in this epoch
	WallS   *float64 `json:"wall_s,omitempty"`  // training wall time since the start of the run
}

func f64(v float64) *float64 { return &v }

// metricsLog appends records to metrics.jsonl, one write per line.
type metricsLog struct {
	f *os.File
}

func openMetrics(path string) (*metricsLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return &metricsLog{f: f}, nil
}

func (m *metricsLog) write(r Record) error {
	if m == nil { // not rank 0 of a data-parallel run
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := m.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func (m *metricsLog) Close() error { return m.f.Close() }

// ReadMetrics reads RUNDIR/metrics.jsonl. A malformed line is an error
// naming the file and line, except a truncated last line (a crash while
// appending), which is ignored.
func ReadMetrics(path string) ([]Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	var recs []Record
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(l, &r); err != nil {
			if i == len(lines)-1 { // no final newline: an interrupted append
				break
			}
			return nil, fmt.Errorf("metrics %s line %d: %v", path, i+1, err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// truncateMetrics drops records that lie after a checkpoint (step records
// beyond step, epoch records beyond epoch), so that a resumed run appends
// exactly the records an uninterrupted run would have.
func truncateMetrics(path string, step, epoch int) error {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	recs, err := ReadMetrics(path)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, r := range recs {
		if (r.Type == "step" && r.Step > step) || (r.Type == "epoch" && r.Epoch > epoch) {
			continue
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return writeFileAtomic(path, buf.Bytes())
}
