// Package serve is simclr's local web app and JSON API over one run: the
// run's configuration and live training curves, nearest-neighbour image
// search over indexed sets, a 2-D map of a set, and a view of the
// augmentations.
//
// The server is net/http with html/template pages; the pages' scripts, the
// style sheet and the vendored uPlot charting library are compiled into the
// binary with go:embed, so it works offline. Each set's embeddings are held
// once, L2-normalised, as an engine tensor; a search is a matrix product
// on the engine's backend followed by a top-k, and concurrent searches are
// batched into one product. Embeddings are cached in RUNDIR/serve-cache,
// keyed by the weights' content, the layer, the evaluation view and the
// data's identity, so a stale cache is never used.
//
// JSON API (errors are {"error": "..."} with a 4xx status for bad input):
//
//	GET  /api/run[?since=N]                  config, last checkpoint step, metrics records, evaluation results
//	GET  /api/sets                           the indexed sets
//	POST /api/embed                          body: JPEG or PNG -> {"layer", "embedding"}
//	GET  /api/search?set=NAME&id=I&k=K       neighbours of image I (itself excluded)
//	POST /api/search?set=NAME&k=K            body: image -> neighbours
//	GET  /api/images/NAME/I[?max=PX]         image I of set NAME as PNG
//	GET  /api/map?set=NAME&method=pca|tsne&points=N
//	POST /api/augment?preset=P&jitter=S&blur=P&crop_min=A&n=N&seed=S  body: image -> views
package serve
