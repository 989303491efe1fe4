package main

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTestImage(t *testing.T, path string, w, h int) {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.RGBA{uint8(255 * x / w), uint8(255 * y / h), uint8((x * y) % 256), 255})
		}
	}
	var buf bytes.Buffer
	var err error
	if strings.HasSuffix(path, ".jpg") {
		err = jpeg.Encode(&buf, m, nil)
	} else {
		err = png.Encode(&buf, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAugmentGrid(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jpg")
	writeTestImage(t, in, 80, 60)
	for _, tc := range []struct {
		preset string
		n      int
		size   int
	}{{"cifar", 5, 32}, {"stl10", 9, 96}} {
		out := filepath.Join(dir, tc.preset+".png")
		var stdout bytes.Buffer
		if err := runAugment(augmentOpts{Image: in, Preset: tc.preset, N: tc.n, Seed: 3, Out: out}, &stdout); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		// Independent geometry: panels of at least 96 px (an integer
		// multiple of the view size), 4 px gaps, 16 px labels; one row
		// block for original + views, one for the 6 operators.
		cell := tc.size * ((96 + tc.size - 1) / tc.size)
		cols := min(max(tc.n+1, 6), 8)
		rows := (tc.n+1+cols-1)/cols + (6+cols-1)/cols
		wantW, wantH := cols*(cell+4)+4, rows*(cell+16+4)+4
		if cfg.Width != wantW || cfg.Height != wantH {
			t.Errorf("%s grid is %dx%d, want %dx%d", tc.preset, cfg.Width, cfg.Height, wantW, wantH)
		}
		if !strings.Contains(stdout.String(), out) {
			t.Errorf("stdout %q does not name the output", stdout.String())
		}
	}
}

func TestAugmentViewsDir(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.png")
	writeTestImage(t, in, 40, 50)
	views := filepath.Join(dir, "views")
	if err := runAugment(augmentOpts{Image: in, Preset: "cifar", N: 7, Seed: 1, ViewsDir: views}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(views, "view_*.png"))
	if len(files) != 7 {
		t.Fatalf("wrote %d views, want 7", len(files))
	}
	f, _ := os.Open(files[0])
	defer f.Close()
	if c, err := png.DecodeConfig(f); err != nil || c.Width != 32 || c.Height != 32 {
		t.Errorf("view %s: %+v, %v; want 32x32", files[0], c, err)
	}
}

func TestAugmentBadInput(t *testing.T) {
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes.txt")
	os.WriteFile(notImage, []byte("hello, not an image"), 0o644)
	truncated := filepath.Join(dir, "cut.png")
	writeTestImage(t, truncated, 30, 30)
	b, _ := os.ReadFile(truncated)
	os.WriteFile(truncated, b[:len(b)/2], 0o644)
	out := filepath.Join(dir, "g.png")
	for _, tc := range []struct {
		path, want string
	}{
		{notImage, "unknown or corrupt image format"},
		{truncated, "corrupt"},
		{filepath.Join(dir, "missing.jpg"), "missing.jpg"},
	} {
		err := runAugment(augmentOpts{Image: tc.path, Preset: "cifar", N: 2, Out: out}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Base(tc.path)) {
			t.Errorf("%s: error %v, want it to name the file and say %q", tc.path, err, tc.want)
		}
	}
	if err := runAugment(augmentOpts{Image: notImage, Preset: "nope", N: 2, Out: out}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad preset: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run left an output file")
	}
}
