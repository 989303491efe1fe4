package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/train"
	"go.yaml.in/yaml/v3"
)

// runInfo is the answer of /api/run. It is read from the run directory on
// every request, so a pretrain writing the run is followed live: a metrics
// line being appended is left out until complete, and checkpoints are
// listed by name, never opened.
type runInfo struct {
	Dir    string         `json:"dir"`
	Source string         `json:"encoder"`
	Layer  string         `json:"layer"`
	Config map[string]any `json:"config"`
	// Step is the step of the newest checkpoint (null before the first).
	Step *int `json:"step"`
	// Metrics are the records of metrics.jsonl from index Since on;
	// MetricsTotal counts them all (poll again with since=MetricsTotal).
	Metrics      []train.Record `json:"metrics"`
	Since        int            `json:"since"`
	MetricsTotal int            `json:"metrics_total"`
	Evals        []evalResult   `json:"evals"`
	Sets         []setInfo      `json:"sets"`
	// Problems are files of the run that could not be read.
	Problems []string `json:"problems,omitempty"`
}

// evalResult is an evaluation JSON (the last line of knn, linear-eval or
// finetune, saved by the user into the run directory or its evals/).
type evalResult struct {
	File   string         `json:"file"`
	Result map[string]any `json:"result"`
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	since, ok := intParam(w, r, "since", 0, 0, 1<<31-1)
	if !ok {
		return
	}
	dir := s.cfg.RunDir
	info := runInfo{Dir: dir, Source: s.cfg.Source, Layer: s.cfg.Embedder.Layer, Since: since, Sets: s.setInfos(), Metrics: []train.Record{}, Evals: []evalResult{}}
	problem := func(err error) { info.Problems = append(info.Problems, err.Error()) }
	if dir == "" { // weights from an exported encoder: no run to read
		writeJSON(w, http.StatusOK, info)
		return
	}
	if b, err := os.ReadFile(filepath.Join(dir, "config.yaml")); err == nil {
		if err := yaml.Unmarshal(b, &info.Config); err != nil {
			problem(fmt.Errorf("%s: %v", filepath.Join(dir, "config.yaml"), err))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		problem(err)
	}
	if step, ok, err := train.LatestCheckpointStep(dir); err != nil {
		problem(err)
	} else if ok {
		info.Step = &step
	}
	mpath := filepath.Join(dir, "metrics.jsonl")
	recs, err := train.ReadMetrics(mpath)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
	default:
		problem(err)
	}
	info.MetricsTotal = len(recs)
	if since < len(recs) {
		info.Metrics = recs[since:]
	}
	info.Evals, err = readEvals(dir)
	if err != nil {
		problem(err)
	}
	writeJSON(w, http.StatusOK, info)
}

// maxEvalFile bounds the evaluation files read (they are one JSON line).
const maxEvalFile = 1 << 20

// readEvals finds the evaluation results in RUNDIR/*.json and
// RUNDIR/evals/*.json: files whose last JSON line is an object with a
// "command" and a "top1", as knn, linear-eval and finetune print.
func readEvals(dir string) ([]evalResult, error) {
	var files []string
	for _, pat := range []string{"*.json", "evals/*.json", "evals/*.jsonl"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	out := []evalResult{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue // removed meanwhile
		}
		b, err := io.ReadAll(io.LimitReader(fh, maxEvalFile))
		fh.Close()
		if err != nil {
			continue
		}
		rel, _ := filepath.Rel(dir, f)
		for _, line := range bytes.Split(b, []byte("\n")) {
			var m map[string]any
			if json.Unmarshal(bytes.TrimSpace(line), &m) != nil {
				continue
			}
			if _, ok := m["command"].(string); !ok {
				continue
			}
			if _, ok := m["top1"].(float64); !ok {
				continue
			}
			out = append(out, evalResult{File: rel, Result: m})
		}
	}
	return out, nil
}

// pngDataURL encodes an image in [0,1] as a data: URL.
func pngDataURL(im *augment.Image) (string, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, im.ToNRGBA()); err != nil {
		return "", fmt.Errorf("encoding PNG: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}
