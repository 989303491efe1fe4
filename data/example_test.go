package data_test

import (
	"fmt"
	"log"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
)

// Training loop over pairs of augmented views, resumable from any
// (epoch, batch).
func ExampleNewPairLoader() {
	ds, err := data.Open(data.DefaultSpec) // embedded Fashion-MNIST test set
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := augment.Preset("cifar")
	if err != nil {
		log.Fatal(err)
	}
	pipe, err := augment.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	loader, err := data.NewPairLoader(ds, pipe, data.DefaultLoaderConfig(256, 1))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("batches per epoch:", loader.NumBatches())
	for b, err := range loader.EpochFrom(0, 37) { // resume at batch 37 of epoch 0
		if err != nil {
			log.Fatal(err)
		}
		// b.Views is [2N,3,S,S]: rows i and i+N are two views of image
		// b.Indices[i]. It is reused once this loop body returns.
		fmt.Println("views:", len(b.Views), "=", 2*b.N, "x 3 x", b.Size, "x", b.Size)
		break
	}
	st := loader.Stats()
	fmt.Println("delivered:", st.Batches, "skipped:", st.Skipped)
	// Output:
	// batches per epoch: 39
	// views: 1572864 = 512 x 3 x 32 x 32
	// delivered: 1 skipped: 0
}

// Feature extraction: one deterministic view per image, in dataset order.
func ExampleNewEvalLoader() {
	ds, err := data.Open("fashion-mnist@test")
	if err != nil {
		log.Fatal(err)
	}
	cfg, _ := augment.Preset("cifar")
	pipe, _ := augment.New(cfg)
	loader, err := data.NewEvalLoader(ds, pipe, 4096, 0)
	if err != nil {
		log.Fatal(err)
	}
	for b, err := range loader.All() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(b.N, "images from", b.Indices[0], "first label", ds.ClassNames()[b.Labels[0]])
	}
	// Output:
	// 4096 images from 0 first label Ankle boot
	// 4096 images from 4096 first label Coat
	// 1808 images from 8192 first label Ankle boot
}
