package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// stepLine is metrics record s as pretrain writes it.
func stepLine(s int) string {
	return fmt.Sprintf(`{"type":"step","step":%d,"epoch":1,"loss":%g,"lr":0.1}`+"\n", s, 5-float64(s)/100)
}

func TestRunInfo(t *testing.T) {
	e := testEnv(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "checkpoints"), 0o755)
	os.MkdirAll(filepath.Join(dir, "evals"), 0o755)
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("arch: resnet18\nwidth: 0.25\nbatch: 256\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "checkpoints", "ckpt-00000020.safetensors"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "checkpoints", "ckpt-00000010.safetensors"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "evals", "knn.json"), []byte(`{"command":"knn","top1":0.5,"top5":0.9,"protocol":"k=200"}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.json"), []byte(`{"hello":1}`), 0o644)
	// Two complete records and one being appended (no newline yet).
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(stepLine(1)+`{"type":"epoch","step":1,"epoch":1,"knn_top1":0.4}`+"\n"+`{"type":"step","st`), 0o644)
	srv, err := New(Config{RunDir: dir, Embedder: e.emb, MaxUpload: testUpload})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, srv)
	var ri runInfo
	getJSON(t, "GET", url+"/api/run", nil, &ri)
	if ri.Step == nil || *ri.Step != 20 || len(ri.Metrics) != 2 || ri.MetricsTotal != 2 || ri.Config["width"] != 0.25 ||
		len(ri.Evals) != 1 || ri.Evals[0].File != "evals/knn.json" || ri.Evals[0].Result["top1"] != 0.5 || len(ri.Problems) != 0 {
		t.Fatalf("run info: %+v", ri)
	}
	if *ri.Metrics[1].KNNTop1 != 0.4 || *ri.Metrics[0].Loss != 5-0.01 {
		t.Fatalf("records %+v", ri.Metrics)
	}
	getJSON(t, "GET", url+"/api/run?since=1", nil, &ri)
	if len(ri.Metrics) != 1 || ri.Metrics[0].Type != "epoch" || ri.MetricsTotal != 2 {
		t.Fatalf("since=1: %+v", ri.Metrics)
	}
	// A damaged line in the middle is reported, not a failure.
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(stepLine(1)+"garbage\n"+stepLine(2)), 0o644)
	getJSON(t, "GET", url+"/api/run", nil, &ri)
	if len(ri.Problems) != 1 || !strings.Contains(ri.Problems[0], "line 2") {
		t.Fatalf("damaged metrics: problems %v", ri.Problems)
	}
	// A run with nothing yet.
	empty := t.TempDir()
	srv, _ = New(Config{RunDir: empty, Embedder: e.emb, MaxUpload: testUpload})
	getJSON(t, "GET", newServer(t, srv)+"/api/run", nil, &ri)
	if ri.Step != nil || len(ri.Metrics) != 0 || ri.Config != nil {
		t.Fatalf("empty run: %+v", ri)
	}
}

// TestRunWrittenWhileRead appends metrics in two writes per line (so
// readers see half lines) and replaces checkpoints as pretrain does, while
// several clients poll /api/run: every answer is a 200 with only complete
// records, in order, and counts and steps never go back.
func TestRunWrittenWhileRead(t *testing.T) {
	e := testEnv(t)
	dir := t.TempDir()
	ck := filepath.Join(dir, "checkpoints")
	os.MkdirAll(ck, 0o755)
	srv, err := New(Config{RunDir: dir, Embedder: e.emb, MaxUpload: testUpload})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, srv)
	const lines = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(filepath.Join(dir, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		for s := 1; s <= lines; s++ {
			l := stepLine(s)
			f.Write([]byte(l[:len(l)/2]))
			time.Sleep(100 * time.Microsecond)
			f.Write([]byte(l[len(l)/2:]))
			if s%20 == 0 { // a new checkpoint renamed in, the oldest pruned
				tmp := filepath.Join(ck, ".ckpt-x.tmp")
				os.WriteFile(tmp, bytes.Repeat([]byte{1}, 4096), 0o644)
				os.Rename(tmp, filepath.Join(ck, fmt.Sprintf("ckpt-%08d.safetensors", s)))
				os.Remove(filepath.Join(ck, fmt.Sprintf("ckpt-%08d.safetensors", s-40)))
			}
		}
	}()
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lastN, lastStep := 0, 0
			for {
				select {
				case <-done:
					return
				default:
				}
				code, b := do(t, "GET", url+"/api/run", nil)
				var ri runInfo
				if code != 200 || json.Unmarshal(b, &ri) != nil {
					t.Errorf("status %d: %s", code, b)
					return
				}
				for i, r := range ri.Metrics {
					if r.Type != "step" || r.Step != i+1 || r.Loss == nil || *r.Loss != 5-float64(r.Step)/100 {
						t.Errorf("record %d: %+v", i, r)
						return
					}
				}
				st := 0
				if ri.Step != nil {
					st = *ri.Step
				}
				if ri.MetricsTotal < lastN || st < lastStep || len(ri.Problems) > 0 {
					t.Errorf("went back or failed: %d records after %d, step %d after %d, problems %v", ri.MetricsTotal, lastN, st, lastStep, ri.Problems)
					return
				}
				lastN, lastStep = ri.MetricsTotal, st
			}
		}()
	}
	wg.Wait()
	var ri runInfo
	getJSON(t, "GET", url+"/api/run", nil, &ri)
	if ri.MetricsTotal != lines || *ri.Step != lines {
		t.Fatalf("at the end: %d records, step %v", ri.MetricsTotal, *ri.Step)
	}
}
