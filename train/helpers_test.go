package train

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeTinyCIFAR writes n records in the CIFAR-10 binary format to
// dir/data_batch_1.bin and returns the data spec. Images of class c share a
// colour pattern, plus noise, so a kNN classifier can tell classes apart.
func writeTinyCIFAR(t testing.TB, dir string, n int, seed uint64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	rec := make([]byte, 0, n*3073)
	for i := 0; i < n; i++ {
		c := i % 4
		rec = append(rec, byte(c))
		for ch := 0; ch < 3; ch++ {
			for y := 0; y < 32; y++ {
				for x := 0; x < 32; x++ {
					v := 40 + 50*((c+ch)%3)
					if (x/8+y/8+c)%2 == 0 {
						v += 90
					}
					v += rng.IntN(40)
					rec = append(rec, byte(v))
				}
			}
		}
	}
	path := filepath.Join(dir, "data_batch_1.bin")
	if err := os.WriteFile(path, rec, 0o644); err != nil {
		t.Fatal(err)
	}
	return "cifar10:" + path
}

// writeCIFARRecords writes n CIFAR-10 records (label i%4, pixels from the
// index) to path.
func writeCIFARRecords(t testing.TB, path string, n, salt int) {
	t.Helper()
	b := make([]byte, n*3073)
	for i := range n {
		b[i*3073] = byte(i % 4)
		for j := 1; j < 3073; j++ {
			b[i*3073+j] = byte(i*7 + j + salt)
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
