package serve

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
)

// web holds the page templates and the static files (the pages' scripts,
// the style sheet and the vendored uPlot), compiled into the binary.
//
//go:embed web
var web embed.FS

var pages = template.Must(template.ParseFS(web, "web/templates/*.html"))

// pageData is what every page template sees.
type pageData struct {
	Page  string // run, search, map, augment
	Title string
	Run   string
	Sets  []setInfo
	Layer string
}

var pageTitles = map[string]string{"run": "Run", "search": "Search", "map": "Map", "augment": "Augmentations"}

// page renders one page; "/" is the run page and the only catch-all, so
// it also answers unknown paths with 404.
func (s *Server) page(name string) http.HandlerFunc {
	return get(func(w http.ResponseWriter, r *http.Request) {
		if name == "run" && r.URL.Path != "/" {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		var buf bytes.Buffer
		d := pageData{Page: name, Title: pageTitles[name], Run: s.cfg.RunDir, Sets: s.setInfos(), Layer: s.cfg.Embedder.Layer}
		if err := pages.ExecuteTemplate(&buf, name+".html", d); err != nil {
			s.cfg.Log.Printf("serve: page %s: %v", name, err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'")
		w.Write(buf.Bytes())
	})
}

func (s *Server) static() http.Handler {
	sub, err := fs.Sub(web, "web/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return get(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}
