package data

import (
	"image"
	"os"
	"path/filepath"
	"testing"
)

// TestSpecPathWithAt: a folder whose name contains '@' opens (the text
// after '@' used to be taken as a split, and folders have none); a path
// that does not exist with its '@' text is still split.
func TestSpecPathWithAt(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "with@at")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writePNG(t, filepath.Join(dir, "a.png"), image.NewRGBA(image.Rect(0, 0, 4, 3)))
	for _, spec := range []string{"folder:" + dir, "folder:" + dir + "@"} {
		kind, path, split, err := ParseSpec(spec)
		if err != nil || kind != "folder" || path != dir || split != "" {
			t.Errorf("ParseSpec(%q) = %q %q %q %v, want folder %q with no split", spec, kind, path, split, err, dir)
		}
		ds, err := Open(spec)
		if err != nil {
			t.Fatalf("Open(%q): %v", spec, err)
		}
		if ds.Len() != 1 {
			t.Errorf("Open(%q): %d images, want 1", spec, ds.Len())
		}
	}
	// Not on disk as written: the '@' text is the split.
	if _, path, split, _ := ParseSpec("cifar10:" + root + "/cifar@test"); path != root+"/cifar" || split != "test" {
		t.Errorf("cifar10:%s/cifar@test: path %q split %q", root, path, split)
	}
}
