// Package eval measures and uses what a SimCLR encoder learned: kNN and
// linear-probe accuracy, fine-tuning subsets, embedding files (NPY, CSV),
// 2-D projections and neighbour grids.
//
// The linear probe follows the paper's transfer protocol (appendix B.8): an
// L2-regularised multinomial logistic regression on frozen, precomputed
// features, trained with L-BFGS, with the L2 strength chosen on a validation
// split held out from the training set.
package eval
