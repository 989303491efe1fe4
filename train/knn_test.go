package train

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
)

func TestKNNMonitorDataChoice(t *testing.T) {
	dir := t.TempDir()
	for k := 1; k <= 5; k++ {
		writeCIFARRecords(t, filepath.Join(dir, fmt.Sprintf("data_batch_%d.bin", k)), 4, k)
	}
	writeCIFARRecords(t, filepath.Join(dir, "test_batch.bin"), 6, 9)
	ac, _ := augment.Preset("cifar")
	tf, _ := augment.New(ac)
	prog := newProgress(io.Discard)
	open := func(spec string) data.Dataset {
		ds, err := data.Open(spec)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}

	// A dataset with a test split: the training set is the bank, the test
	// split the queries.
	cfg := DefaultConfig()
	cfg.Data = "cifar10:" + dir
	m, err := newKNNMonitor(cfg, open(cfg.Data), tf, prog)
	if err != nil {
		t.Fatal(err)
	}
	if m.bankN != 20 || m.queryN != 6 || !strings.HasSuffix(m.querySpec, "@test") {
		t.Errorf("with a test split: bank %d (%s), queries %d (%s); want 20, 6 from @test", m.bankN, m.bankSpec, m.queryN, m.querySpec)
	}

	// A single batch file has no other split: every 5th image is a query.
	cfg.Data = "cifar10:" + filepath.Join(dir, "data_batch_1.bin")
	writeCIFARRecords(t, filepath.Join(dir, "data_batch_1.bin"), 23, 1)
	if m, err = newKNNMonitor(cfg, open(cfg.Data), tf, prog); err != nil {
		t.Fatal(err)
	}
	if m.bankN != 19 || m.queryN != 4 {
		t.Errorf("hold-out: bank %d, queries %d; want 19, 4", m.bankN, m.queryN)
	}

	// Explicit sets win; mismatched class counts are refused.
	cfg.KNNTrain, cfg.KNNTest = "cifar10:"+dir+"@test", "cifar10:"+dir+"@train"
	if m, err = newKNNMonitor(cfg, open(cfg.Data), tf, prog); err != nil {
		t.Fatal(err)
	}
	if m.bankN != 6 || m.queryN != 39 {
		t.Errorf("explicit: bank %d, queries %d; want 6, 39", m.bankN, m.queryN)
	}
	cfg.KNNTest = "fashion-mnist"
	if _, err := newKNNMonitor(cfg, open(cfg.Data), tf, prog); err == nil {
		t.Error("fashion-mnist queries against a CIFAR bank accepted")
	}

	// Off.
	cfg.KNNEvery = 0
	if m, err = newKNNMonitor(cfg, nil, tf, prog); m != nil || err != nil {
		t.Errorf("knn_every 0: %v %v", m, err)
	}
}
