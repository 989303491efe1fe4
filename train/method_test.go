package train

import (
	"strings"
	"testing"
)

// TestSupConBeatsSimCLR: on a labelled class folder where the class is a
// faint pattern under a strong look of each image, SupCon (which uses the
// labels) must beat SimCLR at the same settings by a wide kNN margin, on
// 200 held-out images. SimCLR learns to tell images apart by their look and
// ends near chance (25%); SupCon learns the pattern. oneDNN when built in
// (about 5 s of CPU per run), as `simclr pretrain` would use.
func TestSupConBeatsSimCLR(t *testing.T) {
	spec := writeClassFolder(t, t.TempDir(), 4, 40, 16, 3)
	test := writeClassFolder(t, t.TempDir(), 4, 50, 16, 103)
	backend, err := NewBackend(2)
	if err != nil {
		t.Fatal(err)
	}
	top1 := map[string]float64{}
	for _, m := range []string{"simclr", "supcon"} {
		cfg := tinyConfig(t, spec)
		cfg.Method = m
		cfg.KNNTest = test
		cfg.Batch, cfg.Epochs, cfg.WarmupEpochs = 32, 15, -1
		mustSet(t, &cfg.Augment, "size", 16)
		mustSet(t, &cfg.Augment, "crop_scale_min", 0.5)
		cfg.KNNEvery, cfg.KNNK = 15, 5
		cfg.LR, cfg.Optimizer, cfg.WeightDecay = 0.2, "adam", 0
		cfg.CheckpointEvery = 0
		sum, err, log := pretrain(t, cfg, Options{Backend: backend})
		if err != nil {
			t.Fatalf("%s: %v\n%s", m, err, log)
		}
		top1[m] = *sum.KNNTop1
		t.Logf("%s: kNN top-1 %.3f (at init %.3f), final loss %.3f", m, *sum.KNNTop1, *sum.KNNTop1Init, sum.FinalLoss)
	}
	if top1["supcon"] < top1["simclr"]+0.25 {
		t.Errorf("kNN top-1: supcon %.3f, simclr %.3f; want supcon ahead by 0.25 or more", top1["supcon"], top1["simclr"])
	}
}

// TestSupConNeedsLabels: --method supcon on unlabelled data is refused
// before anything is written, with a message naming the data and the way
// out.
func TestSupConNeedsLabels(t *testing.T) {
	dir := t.TempDir()
	spec := writeClassFolder(t, dir, 1, 8, 8, 2) // one class sub-folder...
	spec = "folder:" + dir + "/class0"           // ...opened as an unlabelled folder
	cfg := tinyConfig(t, spec)
	cfg.Method = "supcon"
	_, err, _ := pretrain(t, cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "method supcon trains on class labels, but "+spec+" has none") ||
		!strings.Contains(err.Error(), "--method simclr") {
		t.Fatalf("error %v", err)
	}
}
