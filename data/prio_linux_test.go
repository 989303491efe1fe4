package data

import (
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"

	"github.com/simclr-go/simclr/augment"
)

// prioTF records the scheduling priority of the threads its View runs on.
type prioTF struct {
	fakeTF
	mu   sync.Mutex
	nice map[int]bool
}

func (p *prioTF) View(dst []float32, src augment.Source, rng *rand.Rand) error {
	// The raw syscall returns 20 - nice.
	v, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err == nil {
		p.mu.Lock()
		p.nice[20-v] = true
		p.mu.Unlock()
	}
	return p.fakeTF.View(dst, src, rng)
}

// TestWorkersRunAtLowPriority checks that augmentation runs on threads at
// nice 19 and that the caller's thread keeps its priority.
func TestWorkersRunAtLowPriority(t *testing.T) {
	before, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		t.Skip("getpriority:", err)
	}
	tf := &prioTF{fakeTF: fakeTF{size: 2, failOn: -1}, nice: map[int]bool{}}
	l, err := NewPairLoader(&fakeDS{n: 40}, tf, LoaderConfig{Batch: 4, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range l.Epoch(0) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(tf.nice) != 1 || !tf.nice[19] {
		t.Errorf("views were made at nice levels %v, want only 19", tf.nice)
	}
	if after, _ := syscall.Getpriority(syscall.PRIO_PROCESS, 0); after != before {
		t.Errorf("the process priority changed from %d to %d", before, after)
	}
}
