package main

// Reproductions of the crashes and silent wrong behaviour found by probing
// the commands (issue 9, section 4). Each test failed before its fix.

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine/dnnl"
	"github.com/spf13/cobra"
)

// bombPNG is a valid PNG header declaring w x h 8-bit grey pixels followed
// by a few bytes of image data: small on disk, huge once decoded.
func bombPNG(t *testing.T, path string, w, h uint32) {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, body []byte) {
		binary.Write(&buf, binary.BigEndian, uint32(len(body)))
		c := append([]byte(typ), body...)
		buf.Write(c)
		binary.Write(&buf, binary.BigEndian, crc32.ChecksumIEEE(c))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 0 // 8-bit greyscale
	chunk("IHDR", ihdr)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 1024))
	zw.Close()
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAugmentRefusesDecompressionBomb: augment shares the loader's pixel
// limit and refuses an over-limit image from its header, before allocating
// its pixels (it used to decode a 30000x30000 PNG: 56 s, 14 GB, exit 0).
func TestAugmentRefusesDecompressionBomb(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bomb.png")
	// Just over the limit, so that the old code path allocates only
	// ~70 MB before failing on the missing data.
	side := uint32(1)
	for uint64(side)*uint64(side) <= data.MaxImagePixels {
		side += 256
	}
	bombPNG(t, in, side, side)
	out := filepath.Join(dir, "g.png")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := runAugment(augmentOpts{Image: in, Preset: "cifar", N: 2, Out: out}, &bytes.Buffer{})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "over the limit") || !strings.Contains(err.Error(), "bomb.png") {
		t.Errorf("error %v, want one naming bomb.png and the pixel limit", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("allocated %d MiB before refusing the image; the header check must come first", grew>>20)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output grid was written")
	}
}

// TestAugmentOutputs: --out DIR is refused without leaving a temporary
// file, --out x.jpg writes a JPEG (it used to write PNG bytes), another
// extension is refused before any work, and outputs respect the umask.
func TestAugmentOutputs(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.png")
	writeTestImage(t, in, 40, 30)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)

	err := runAugment(augmentOpts{Image: in, Preset: "cifar", N: 1, Out: sub}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("--out DIR: error %v, want one saying it is a directory", err)
	}
	err = runAugment(augmentOpts{Image: in, Preset: "cifar", N: 1, Out: filepath.Join(dir, "g.gif")}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), ".png") || !strings.Contains(err.Error(), "g.gif") {
		t.Errorf("--out g.gif: error %v, want one naming the file and the accepted extensions", err)
	}
	jpg := filepath.Join(dir, "g.jpg")
	if err := runAugment(augmentOpts{Image: in, Preset: "cifar", N: 1, Out: jpg}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(jpg)
	if err != nil || len(b) < 3 || b[0] != 0xFF || b[1] != 0xD8 || b[2] != 0xFF {
		t.Errorf("%s does not start with a JPEG marker (%v)", jpg, err)
	}
	views := filepath.Join(dir, "views")
	if err := runAugment(augmentOpts{Image: in, Preset: "cifar", N: 1, ViewsDir: views}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{jpg, filepath.Join(views, "view_0000.png")} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v (%v), want 0644 under umask 022", p, st.Mode().Perm(), err)
		}
	}
	var tmps []string
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error {
		if strings.Contains(filepath.Base(p), ".tmp") {
			tmps = append(tmps, p)
		}
		return nil
	})
	if len(tmps) > 0 {
		t.Errorf("temporary files left behind: %v", tmps)
	}
}

// TestNeighborsValidatesGrid: --cell 0 used to write a blank image with
// exit 0 and --cell 100000 to die out of memory; both, and a grid over the
// pixel limit, are refused before anything is embedded. On a 1-image set
// the message says why instead of "want 1 <= k < 1".
func TestNeighborsValidatesGrid(t *testing.T) {
	fx := tinyRun(t)
	out := filepath.Join(t.TempDir(), "grid.png")
	one := t.TempDir()
	writeTestImage(t, filepath.Join(one, "only.png"), 8, 8)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", fx.test, "--cell", "0"}, "--cell 0"},
		{[]string{"--data", fx.test, "--cell", "100000"}, "--cell 100000"},
		{[]string{"--data", fx.test, "--cell", "1024", "--query", "18", "--k", "17"}, "over the limit"},
		{[]string{"--data", fx.test, "--k", "0"}, "--k 0"},
		{[]string{"--data", "folder:" + one, "--k", "1"}, "needs at least 2"},
		{[]string{"--data", fx.test, "--k", "18"}, "k <= 17"},
	} {
		args := append([]string{"neighbors", "--run", fx.run, "--out", out}, c.args...)
		_, stderr, err := runCmd(t, newNeighborsCmd, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one saying %q", c.args, err, c.want)
		}
		if strings.Contains(stderr, "embedded") {
			t.Errorf("%v: embedded the data before refusing the flags", c.args)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was written", out)
	}
}

// TestThreadsCappedAtCPUs: --threads above the CPU count (64 on 2 cores
// ran 50x slower, 1000 hung) is capped to it with a warning, unless
// --threads-force. bench reports the thread count it used.
func TestThreadsCappedAtCPUs(t *testing.T) {
	cpus := runtime.NumCPU()
	for _, c := range []struct {
		force bool
		want  int
	}{{false, cpus}, {true, cpus + 1}} {
		cmd := newBenchCmd()
		var out, errb bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errb)
		args := []string{"--width", "0.125", "--batch", "2", "--steps", "1", "--warmup", "0", "--image-size", "8", "--backend", "reference",
			"--threads", strconv.Itoa(cpus + 1)}
		if c.force {
			args = append(args, "--threads-force")
		}
		cmd.SetArgs(args)
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		var r benchResult
		if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r); err != nil {
			t.Fatalf("%q: %v", out.String(), err)
		}
		if r.Threads != c.want {
			t.Errorf("force %v: ran with %d threads, want %d", c.force, r.Threads, c.want)
		}
		if warned := strings.Contains(errb.String(), "more than the"); warned == c.force {
			t.Errorf("force %v: warning %v in %q", c.force, warned, errb.String())
		}
	}
	// The evaluation commands have the flag too.
	if f := newKNNCmd().Flags().Lookup("threads-force"); f == nil {
		t.Error("knn has no --threads-force")
	}
}

// TestOutputFilesRespectUmask: files renamed into place from a temporary
// file were 0600 whatever the umask; embed (.npy and its side files, the
// t-SNE plot), export and neighbors outputs are now 0666 minus the umask.
func TestOutputFilesRespectUmask(t *testing.T) {
	fx := tinyRun(t)
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	npy, plot, enc, grid := filepath.Join(dir, "e.npy"), filepath.Join(dir, "e.png"), filepath.Join(dir, "enc.safetensors"), filepath.Join(dir, "nn.png")
	for _, args := range [][]string{
		{"embed", "--run", fx.run, "--data", fx.test, "--out", npy, "--tsne", plot, "--projection", "pca"},
		{"export", "--run", fx.run, "--out", enc},
		{"neighbors", "--run", fx.run, "--data", fx.test, "--query", "2", "--k", "2", "--cell", "8", "--out", grid},
	} {
		cmd := map[string]func() *cobra.Command{"embed": newEmbedCmd, "export": newExportCmd, "neighbors": newNeighborsCmd}[args[0]]
		if _, stderr, err := runCmd(t, cmd, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) < 5 {
		t.Fatalf("only %v written", files)
	}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v (%v), want 0644 under umask 022", filepath.Base(f), st.Mode().Perm(), err)
		}
	}
}

// TestEvalFlagsValidatedFirst: flag values that used to be refused only
// after both datasets were embedded (knn --k 0, --tau 0) or that silently
// meant "default" (--val-fraction 0, --max-iter 0, finetune --epochs 0) are
// refused before any data or run is opened.
func TestEvalFlagsValidatedFirst(t *testing.T) {
	fx := tinyRun(t)
	tt := []string{"--run", fx.run, "--train", fx.train, "--test", fx.test}
	for _, c := range []struct {
		newCmd func() *cobra.Command
		args   []string
		want   string
	}{
		{newKNNCmd, []string{"knn", "--k", "0"}, "--k 0"},
		{newKNNCmd, []string{"knn", "--tau", "0"}, "--tau 0"},
		{newKNNCmd, []string{"knn", "--tau", "-Inf"}, "--tau -Inf"},
		{newKNNCmd, []string{"knn", "--eval-batch", "0"}, "--eval-batch 0"},
		{newKNNCmd, []string{"knn", "--threads", "-1"}, "--threads -1"},
		{newLinearEvalCmd, []string{"linear-eval", "--val-fraction", "0"}, "--val-fraction 0"},
		{newLinearEvalCmd, []string{"linear-eval", "--val-fraction", "1"}, "--val-fraction 1"},
		{newLinearEvalCmd, []string{"linear-eval", "--max-iter", "0"}, "--max-iter 0"},
		{newLinearEvalCmd, []string{"linear-eval", "--augment", "crop-flip", "--epochs", "0"}, "--epochs 0"},
		{newFinetuneCmd, []string{"finetune", "--label-fraction", "1", "--epochs", "0"}, "--epochs 0"},
		{newFinetuneCmd, []string{"finetune", "--label-fraction", "1", "--lr", "0"}, "--lr 0"},
		{newEmbedCmd, []string{"embed", "--data", fx.test, "--out", filepath.Join(t.TempDir(), "e.npy"), "--plot-points", "0"}, "--plot-points 0"},
	} {
		args := append(c.args, tt...)
		if c.args[0] == "embed" {
			args = append(c.args, "--run", fx.run)
		}
		_, stderr, err := runCmd(t, c.newCmd, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one saying %q", c.args, err, c.want)
		}
		if stderr != "" {
			t.Errorf("%v: work was done before the flag was refused:\n%s", c.args, stderr)
		}
	}
}

// TestKNNHelpCitesDefaultsRight: the help said k=200, tau=0.1 were used
// "as in lightly and solo-learn"; solo-learn's defaults are k=20, T=0.07
// (solo/utils/knn.py).
func TestKNNHelpCitesDefaultsRight(t *testing.T) {
	c := newKNNCmd()
	long := strings.Join(strings.Fields(c.Long), " ")
	if strings.Contains(long, "lightly and solo-learn") || !strings.Contains(long, "solo-learn's kNN callback defaults to k=20, T=0.07") {
		t.Errorf("knn --help misattributes the defaults:\n%s", c.Long)
	}
	if k, tau := c.Flags().Lookup("k").DefValue, c.Flags().Lookup("tau").DefValue; k != "200" || tau != "0.1" {
		t.Errorf("defaults k=%s tau=%s, the help says 200 and 0.1", k, tau)
	}
}

// TestVersionFlag: simclr --version names the module version, the Go
// version and the backend with oneDNN's version when built with it.
func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetArgs([]string{"--version"})
	defer rootCmd.SetArgs(nil)
	defer rootCmd.SetOut(nil)
	if err := rootCmd.Execute(); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.HasPrefix(s, "simclr ") || !strings.Contains(s, runtime.Version()) || !strings.Contains(s, "backend: ") {
		t.Errorf("--version printed %q", s)
	}
	if v := dnnl.Version(); v != "" {
		if !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(v) || !strings.Contains(s, "oneDNN "+v) {
			t.Errorf("oneDNN version %q; --version printed %q", v, s)
		}
	}
}
