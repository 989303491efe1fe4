package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Config is what a Server serves.
type Config struct {
	// RunDir is the run directory (config, metrics, checkpoints, evaluation
	// results); it is only read, except for its serve-cache/ folder.
	RunDir string
	// Source describes the weights in use, for the run page.
	Source string
	// Sets are the indexed image sets, in the order shown.
	Sets []*Index
	// Embedder embeds uploaded images (the layer the sets were indexed with).
	Embedder *Embedder
	// Token, when set, is required on every request as "Authorization:
	// Bearer TOKEN" (or the cookie set by visiting any page with ?token=).
	Token string
	// Loopback says the server listens on a loopback address only; then,
	// without a token, requests must name a loopback host (a page on
	// another site cannot reach it by DNS rebinding).
	Loopback bool
	// MaxUpload caps request bodies in bytes.
	MaxUpload int64
	// Log receives one line per server-side failure; nil discards.
	Log *log.Logger
}

// Server is the web app and JSON API over one run and its indexed sets.
type Server struct {
	cfg   Config
	sets  map[string]*Index
	mux   *http.ServeMux
	token [32]byte

	mapMu   sync.Mutex
	maps    map[string]*mapEntry
	mapKeys []string // in the order computed, oldest first

	uploads chan struct{} // slots of readImage
	work    chan struct{} // slots for decoding set images and projecting maps
}

// DefaultMaxUpload is the default cap on an uploaded image, in bytes.
const DefaultMaxUpload = 20 << 20

// New checks cfg and builds the server's routes.
func New(cfg Config) (*Server, error) {
	if cfg.MaxUpload <= 0 {
		return nil, fmt.Errorf("serve: upload limit %d bytes: want > 0", cfg.MaxUpload)
	}
	if cfg.Embedder == nil {
		return nil, errors.New("serve: no embedder")
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	s := &Server{cfg: cfg, sets: map[string]*Index{}, mux: http.NewServeMux(), maps: map[string]*mapEntry{},
		uploads: make(chan struct{}, maxUploads), work: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
	for _, ix := range cfg.Sets {
		if _, dup := s.sets[ix.Name]; dup {
			return nil, fmt.Errorf("serve: two sets are named %q; name them with --data NAME=SPEC", ix.Name)
		}
		if ix.Dim != cfg.Embedder.Dim() {
			return nil, fmt.Errorf("serve: set %s has %d-d embeddings, the embedder gives %d-d", ix.Name, ix.Dim, cfg.Embedder.Dim())
		}
		s.sets[ix.Name] = ix
	}
	s.token = sha256.Sum256([]byte(cfg.Token))
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("/", s.page("run"))
	m.HandleFunc("/search", s.page("search"))
	m.HandleFunc("/map", s.page("map"))
	m.HandleFunc("/augment", s.page("augment"))
	m.Handle("/static/", s.static())
	m.HandleFunc("/api/run", get(s.apiRun))
	m.HandleFunc("/api/sets", get(s.apiSets))
	m.HandleFunc("/api/embed", post(s.apiEmbed))
	m.HandleFunc("/api/search", s.apiSearch)
	m.HandleFunc("/api/images/{set}/{id}", get(s.apiImage))
	m.HandleFunc("/api/map", get(s.apiMap))
	m.HandleFunc("/api/augment", post(s.apiAugment))
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		jsonError(w, http.StatusNotFound, "no such API endpoint: %s", r.URL.Path)
	})
}

// Handler is the server with its checks: a path that is not clean
// (traversal) is 404 before any routing, then the host and token are
// checked, bodies are capped, and a panic becomes a JSON 500.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.cfg.Log.Printf("serve: panic on %s %s: %v", r.Method, r.URL.Path, p)
				jsonError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if !cleanPath(r.URL.Path) {
			jsonError(w, http.StatusNotFound, "not found")
			return
		}
		if s.cfg.Token == "" && s.cfg.Loopback && !loopbackHost(r.Host) {
			jsonError(w, http.StatusForbidden, "host %q: this server answers only requests to localhost (start it with --token to serve other names)", r.Host)
			return
		}
		if s.cfg.Token != "" && !s.authorized(w, r) {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUpload)
		s.mux.ServeHTTP(w, r)
	})
}

// acquire takes a slot of ch for the request, or answers 503 when the
// client gives up first.
func acquire(w http.ResponseWriter, r *http.Request, ch chan struct{}) bool {
	select {
	case ch <- struct{}{}:
		return true
	case <-r.Context().Done():
		jsonError(w, http.StatusServiceUnavailable, "gave up waiting for the server: %v", r.Context().Err())
		return false
	}
}

// cleanPath is false for paths with dot segments, doubled slashes and the
// like, which ServeMux would otherwise answer with a redirect.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' || strings.Contains(p, "\\") {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && p != "/" {
		c += "/"
	}
	return c == p
}

func loopbackHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

const tokenCookie = "simclr_token"

// authorized checks the bearer token (or the cookie a browser got from a
// ?token= link) in constant time, writing a 401 when it is missing or
// wrong. A page request with a right ?token= sets the cookie and
// redirects to the URL without it.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.tokenOK(v) {
		return true
	}
	if c, err := r.Cookie(tokenCookie); err == nil && s.tokenOK(c.Value) {
		return true
	}
	if v := r.URL.Query().Get("token"); v != "" && r.Method == http.MethodGet && s.tokenOK(v) {
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		u := *r.URL
		q := u.Query()
		q.Del("token")
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="simclr"`)
	jsonError(w, http.StatusUnauthorized, "missing or wrong token: send the header \"Authorization: Bearer TOKEN\" (or open /?token=TOKEN in a browser)")
	return false
}

func (s *Server) tokenOK(v string) bool {
	h := sha256.Sum256([]byte(v))
	return subtle.ConstantTimeCompare(h[:], s.token[:]) == 1
}

// HTTPServer wraps h in an http.Server with deadlines on reading headers
// and bodies and on writing answers, so a slow or stalled client cannot
// hold a connection open.
func HTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second, // a t-SNE map may take a while
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// CheckAddr refuses a non-loopback listen address without a token and
// reports whether addr is loopback-only.
func CheckAddr(addr, token string) (loopback bool, err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("--addr %q: want HOST:PORT, e.g. 127.0.0.1:8080: %v", addr, err)
	}
	loopback = host == "localhost"
	if ip := net.ParseIP(host); ip != nil {
		loopback = ip.IsLoopback()
	}
	if !loopback && token == "" {
		return false, fmt.Errorf("--addr %s is not a loopback address: anyone who can reach it could use the server, so --token is required (clients send \"Authorization: Bearer TOKEN\")", addr)
	}
	return loopback, nil
}

// jsonError writes {"error": "..."} with status.
func jsonError(w http.ResponseWriter, status int, format string, a ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, a...)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error: encoding the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func get(h http.HandlerFunc) http.HandlerFunc  { return method(http.MethodGet, h) }
func post(h http.HandlerFunc) http.HandlerFunc { return method(http.MethodPost, h) }
func method(m string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m && !(m == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", m)
			jsonError(w, http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, m)
			return
		}
		h(w, r)
	}
}
