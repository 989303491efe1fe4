package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/serve"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newServeCmd()) }

func newServeCmd() *cobra.Command {
	var f runFlags
	var specs []string
	var addr, layer, token string
	var maxUploadMB int
	c := &cobra.Command{
		Use:   "serve --run RUNDIR [--data [NAME=]SPEC]... [--addr 127.0.0.1:8080] [--layer h|z]",
		Short: "Serve a local web app and JSON API to look at a run and search images by similarity",
		Long: `serve starts a web server over a run directory. Its pages show the run
(configuration; loss, learning-rate and kNN curves, live while a pretrain writes
the run; evaluation results), search an indexed set by image (pick one or
upload one: its nearest neighbours by cosine similarity), a 2-D map of a set
(PCA or t-SNE), and the augmentations of an uploaded image.

Every --data set is embedded once with the run's last checkpoint (layer h, the
encoder output, or z) and cached in RUNDIR/serve-cache/, keyed by the weights'
content, the layer and the data; a later start with the same checkpoint and
data loads the cache, and a stale cache is never used. A set is named in URLs
by NAME= or by its folder's base name (plus -SPLIT).

It listens on 127.0.0.1 unless --addr says otherwise; a non-loopback address
needs --token, then every request must carry "Authorization: Bearer TOKEN" (a
browser can open http://HOST:PORT/?token=TOKEN once).

JSON API: GET /api/run; POST /api/embed (body: JPEG/PNG); GET
/api/search?set=NAME&id=I&k=K or POST /api/search?set=NAME&k=K (body: image);
GET /api/images/NAME/I (PNG). Errors are {"error": "..."} with a 4xx status.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			if layer != "h" && layer != "z" {
				return fmt.Errorf("--layer %q: want h or z", layer)
			}
			if maxUploadMB < 1 || maxUploadMB > 1024 {
				return fmt.Errorf("--max-upload-mb %d: want 1 to 1024", maxUploadMB)
			}
			loopback, err := serve.CheckAddr(addr, token)
			if err != nil {
				return err
			}
			type setArg struct{ name, spec string }
			var args []setArg
			seen := map[string]string{}
			for _, a := range specs {
				name, spec, err := serve.ParseSetArg(a)
				if err != nil {
					return err
				}
				if prev, dup := seen[name]; dup {
					return fmt.Errorf("--data %s and --data %s are both named %q: name them with --data NAME=SPEC", prev, a, name)
				}
				seen[name] = a
				args = append(args, setArg{name, spec})
			}
			lr, err := openRun(&f, stderr)
			if err != nil {
				return err
			}
			var enc nn.Net = lr.Model.Encoder
			if layer == "z" {
				if lr.Model.Head == nil {
					return fmt.Errorf("--layer z: %s has no projection head (an exported encoder); use --layer h or the run directory", f.run)
				}
				enc = lr.Model
			}
			// The run directory: of the checkpoint when --run names one in
			// RUNDIR/checkpoints; none for an exported encoder elsewhere
			// (then nothing is cached and the run page is empty).
			rundir := lr.Run.Dir
			pipe, err := lr.evalPipeline()
			if err != nil {
				return err
			}
			emb := serve.NewEmbedder(lr.Tape, enc, pipe, layer)
			var sets []*serve.Index
			for _, a := range args {
				ds, err := data.Open(a.spec)
				if err != nil {
					return fmt.Errorf("--data %s: %w", a.spec, err)
				}
				ix, err := serve.BuildIndex(a.name, a.spec, ds, emb, lr.Backend,
					serve.BuildOptions{RunDir: rundir, Batch: f.batch, Workers: f.workers, Progress: stderr})
				if err != nil {
					return err
				}
				sets = append(sets, ix)
			}
			srv, err := serve.New(serve.Config{RunDir: rundir, Source: lr.Source, Sets: sets, Embedder: emb,
				Token: token, Loopback: loopback, MaxUpload: int64(maxUploadMB) << 20,
				Log: log.New(stderr, "", log.LstdFlags)})
			if err != nil {
				return err
			}
			var lc net.ListenConfig
			ln, err := lc.Listen(cmd.Context(), "tcp", addr)
			if err != nil {
				return fmt.Errorf("--addr %s: %w", addr, err)
			}
			hs := serve.HTTPServer(srv.Handler())
			for _, ix := range sets {
				fmt.Fprintf(stderr, "set %s: %d images (%s)\n", ix.Name, ix.N, ix.Spec)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "simclr serve: http://%s/\n", ln.Addr())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), serveShutdown)
				defer cancel()
				hs.Shutdown(sctx)
			}()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	addRunFlags(c, &f, false)
	c.Flags().StringArrayVar(&specs, "data", nil, "[NAME=]SPEC of an image set to index for search and maps (repeatable)")
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen address HOST:PORT (a non-loopback host needs --token; port 0 picks a free one)")
	c.Flags().StringVar(&layer, "layer", "h", "h (encoder output) | z (projection head output): the embeddings searched")
	c.Flags().StringVar(&token, "token", "", "bearer token every request must carry (required with a non-loopback --addr)")
	c.Flags().IntVar(&maxUploadMB, "max-upload-mb", serve.DefaultMaxUpload>>20, "largest accepted request body (an uploaded image), in MiB")
	return c
}

// serveShutdown is how long open requests may finish after an interrupt.
const serveShutdown = 5 * time.Second
