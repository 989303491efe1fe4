package eval

import (
	"bytes"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNPYRoundTripAndHeader(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewNPYWriter(&buf, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	data := []float32{0, 1, -2.5, 3e-8, 1e30, 7, -0, 8, 9, 10, 11, 12.25, 13, 14, 15}
	// Uneven batches: 2 rows then 3.
	if err := w.Write(data[:6]); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(data[6:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	if !bytes.HasPrefix(raw, []byte("\x93NUMPY\x01\x00")) {
		t.Fatalf("bad magic/version %q", raw[:8])
	}
	h, got, err := ReadNPYFloat32(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if h.DataOffset%64 != 0 {
		t.Errorf("data offset %d not 64-aligned", h.DataOffset)
	}
	if h.Descr != "<f4" || h.FortranOrder || !slices.Equal(h.Shape, []int{5, 3}) {
		t.Errorf("header %+v", h)
	}
	if len(raw) != h.DataOffset+4*15 {
		t.Errorf("file is %d bytes, want %d", len(raw), h.DataOffset+60)
	}
	if !slices.Equal(got, data) {
		t.Errorf("data %v, want %v", got, data)
	}
}

func TestNPYWriterErrors(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewNPYWriter(&buf, 2, 3)
	if err := w.Write([]float32{1, 2}); err == nil {
		t.Error("partial row accepted")
	}
	if err := w.Write(make([]float32, 9)); err == nil {
		t.Error("more rows than the header promised accepted")
	}
	w.Write(make([]float32, 3))
	if err := w.Close(); err == nil {
		t.Error("Close with a missing row: no error")
	}
	if _, err := ReadNPYHeader(strings.NewReader("PK\x03\x04 not npy")); err == nil {
		t.Error("bad magic accepted")
	}
}

func python3WithNumpy(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skip("python3 has no numpy")
	}
	return py
}

func TestEmbeddingFileNPYLoadsWithNumpy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "emb.npy")
	e, err := CreateEmbeddingFile(path, 4, 2, true, []string{"cat", "dog"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Write([]float32{1, 2, 3, 4}, []int{0, 1}, []string{"a.png", "b.png"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Write([]float32{5, 6.5, -7, 8}, []int{1, 0}, []string{"c.png", "d d.png"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	lab, _ := os.ReadFile(filepath.Join(dir, "emb.labels.txt"))
	names, _ := os.ReadFile(filepath.Join(dir, "emb.names.txt"))
	classes, _ := os.ReadFile(filepath.Join(dir, "emb.classes.txt"))
	if string(lab) != "0\n1\n1\n0\n" || string(names) != "a.png\nb.png\nc.png\nd d.png\n" || string(classes) != "cat\ndog\n" {
		t.Errorf("sidecars: labels %q names %q classes %q", lab, names, classes)
	}
	py := python3WithNumpy(t)
	out, err := exec.Command(py, "-c",
		"import numpy, sys; a = numpy.load(sys.argv[1]); print(a.dtype, a.shape, ' '.join(repr(float(v)) for v in a.ravel()))",
		path).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy.load: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "float32 (4, 2) 1.0 2.0 3.0 4.0 5.0 6.5 -7.0 8.0"; got != want {
		t.Errorf("numpy sees %q, want %q", got, want)
	}
}

func TestEmbeddingFileCSV(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emb.csv")
	e, err := CreateEmbeddingFile(path, 2, 3, true, []string{"cat", "dog"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Write([]float32{0.1, 2, 3, 4, 5, -6}, []int{1, 0}, []string{"x,1.png", "y.png"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"index", "name", "label", "class", "e0", "e1", "e2"},
		{"0", "x,1.png", "1", "dog", "0.1", "2", "3"},
		{"1", "y.png", "0", "cat", "4", "5", "-6"},
	}
	for i := range want {
		if !slices.Equal(recs[i], want[i]) {
			t.Errorf("row %d: %q, want %q", i, recs[i], want[i])
		}
	}
	if v, _ := strconv.ParseFloat(recs[1][4], 32); float32(v) != 0.1 {
		t.Errorf("0.1 does not round-trip through the CSV: %q", recs[1][4])
	}
}

func TestEmbeddingFileErrorsLeaveNothing(t *testing.T) {
	dir := t.TempDir()
	if _, err := CreateEmbeddingFile(filepath.Join(dir, "x.parquet"), 1, 1, false, nil); err == nil || !strings.Contains(err.Error(), "x.parquet") {
		t.Errorf("unknown extension: %v", err)
	}
	e, err := CreateEmbeddingFile(filepath.Join(dir, "short.npy"), 3, 1, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Write([]float32{1}, []int{0}, []string{"a"})
	if err := e.Close(); err == nil || !strings.Contains(err.Error(), "1 of 3") {
		t.Errorf("short write: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left after a failed write: %v", left)
	}
	if _, err := CreateEmbeddingFile(filepath.Join(dir, "missing", "x.npy"), 1, 1, false, nil); err == nil {
		t.Error("missing directory: no error")
	}
}

// TestEmbeddingFileStreams writes 40 MB of embeddings batch by batch and
// checks the writer's allocations stay far below the output size.
func TestEmbeddingFileStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 40 MB")
	}
	const rows, dim, batch = 80000, 128, 500
	path := filepath.Join(t.TempDir(), "big.npy")
	feats := make([]float32, batch*dim)
	labels := make([]int, batch)
	names := make([]string, batch)
	for i := range names {
		names[i] = "img.png"
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e, err := CreateEmbeddingFile(path, rows, dim, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < rows; r += batch {
		if err := e.Write(feats, labels, names); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	out := int64(rows * dim * 4)
	alloc := int64(after.TotalAlloc - before.TotalAlloc)
	if alloc > out/20 {
		t.Errorf("writer allocated %d bytes for a %d-byte file: not streaming", alloc, out)
	}
	st, _ := os.Stat(path)
	if st.Size() < out {
		t.Errorf("file is %d bytes, want at least %d", st.Size(), out)
	}
}
