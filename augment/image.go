// Package augment implements SimCLR's data augmentations (paper appendix A)
// with torchvision's semantics, in pure Go.
package augment

// Image is a planar RGB image with float32 values in [0,1]: channel c, row y,
// column x is Pix[(c*H+y)*W+x].
type Image struct {
	W, H int
	Pix  []float32 // len 3*W*H
}

// NewImage returns a black image of the given size.
func NewImage(w, h int) *Image { return &Image{W: w, H: h, Pix: make([]float32, 3*w*h)} }
