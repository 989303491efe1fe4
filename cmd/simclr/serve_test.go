package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// syncBuffer is a bytes.Buffer safe to read while the command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var urlRE = regexp.MustCompile(`http://[0-9.:]+/`)

// startServe runs "simclr serve ARGS" until the test ends and returns its
// URL and stderr.
func startServe(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	root := &cobra.Command{Use: "simclr", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newServeCmd())
	out, errb := &syncBuffer{}, &syncBuffer{}
	root.SetOut(out)
	root.SetErr(errb)
	root.SetArgs(append([]string{"serve"}, args...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop after its context was cancelled")
		}
	})
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if u := urlRE.FindString(out.String()); u != "" {
			return u, errb
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, errb.String())
		default:
		}
	}
	t.Fatalf("serve printed no URL:\n%s", errb.String())
	return "", nil
}

func TestServeCommand(t *testing.T) {
	fx := tinyRun(t)
	args := []string{"--run", fx.run, "--data", fx.test, "--data", "tr=" + fx.train, "--addr", "127.0.0.1:0", "--threads", "1", "--workers", "2"}
	url, stderr := startServe(t, args...)
	if !strings.Contains(stderr.String(), "set test: embedding 18 images") || !strings.Contains(stderr.String(), "set tr: embedding 36 images") {
		t.Fatalf("first start did not embed both sets:\n%s", stderr)
	}
	resp, err := http.Get(url + "api/search?set=test&id=3&k=4")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var res struct {
		Neighbors []struct{ ID int }
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &res) != nil || len(res.Neighbors) != 4 {
		t.Fatalf("search: %d %s", resp.StatusCode, b)
	}
	if _, err := os.Stat(filepath.Join(fx.run, "serve-cache", "test-h.npy")); err != nil {
		t.Fatalf("no cache written: %v", err)
	}
	// A second server on the same run loads both sets from the cache.
	_, stderr2 := startServe(t, args...)
	if s := stderr2.String(); strings.Count(s, "from the cache") != 2 || strings.Contains(s, ": embedding ") {
		t.Fatalf("second start did not use the cache:\n%s", s)
	}
}

func TestServeBadFlags(t *testing.T) {
	fx := tinyRun(t)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--run", fx.run, "--addr", "0.0.0.0:0"}, "--token is required"},
		{[]string{"--run", fx.run, "--addr", "nonsense"}, "--addr"},
		{[]string{"--run", fx.run, "--layer", "q"}, "--layer"},
		{[]string{"--run", fx.run, "--max-upload-mb", "0"}, "--max-upload-mb"},
		{[]string{"--run", fx.run, "--data", fx.test, "--data", fx.test}, "both named"},
		{[]string{"--run", fx.run, "--data", "folder:/nonexistent/x"}, "/nonexistent/x"},
		{[]string{"--data", fx.test}, "--run"},
	} {
		_, _, err := runCmd(t, newServeCmd, append([]string{"serve"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("serve %v: error %v, want one mentioning %q", c.args, err, c.msg)
		}
	}
}

// TestServeExportedEncoder: --run may name an exported encoder; nothing is
// cached beside it, the run page has no run, and --layer z is refused.
func TestServeExportedEncoder(t *testing.T) {
	fx := tinyRun(t)
	dir := t.TempDir()
	enc := filepath.Join(dir, "enc.safetensors")
	if _, stderr, err := runCmd(t, newExportCmd, "export", "--run", fx.run, "--out", enc); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	url, stderr := startServe(t, "--run", enc, "--data", fx.test, "--addr", "127.0.0.1:0", "--threads", "1")
	if !strings.Contains(stderr.String(), "no run directory to cache in") {
		t.Fatalf("stderr:\n%s", stderr)
	}
	resp, err := http.Get(url + "api/run")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"step":null`) || !strings.Contains(string(b), `"metrics":[]`) {
		t.Fatalf("/api/run: %d %s", resp.StatusCode, b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("files written beside the export: %v", ents)
	}
	if _, _, err := runCmd(t, newServeCmd, "serve", "--run", enc, "--layer", "z"); err == nil || !strings.Contains(err.Error(), "no projection head") {
		t.Errorf("--layer z on an export: %v", err)
	}
}
