package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/simclr-go/simclr/engine/dnnl"
)

// simclr --version prints versionText. It is a template function, so that
// the build information and oneDNN are looked at only when asked for.
func init() {
	rootCmd.Version = "-" // makes cobra add --version; the text is versionText's
	cobra.AddTemplateFunc("simclrVersion", versionText)
	rootCmd.SetVersionTemplate("{{simclrVersion}}")
}

// versionText says which simclr this is (module version, VCS revision and
// time as stamped by go build, Go version) and which compute backend it
// has (oneDNN and its version, or the plain-Go reference backend).
func versionText() string {
	var b strings.Builder
	version, rev := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		var vcsRev, vcsTime string
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRev = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if vcsRev != "" {
			rev = "revision " + vcsRev
			if dirty {
				rev += " (modified)"
			}
			if vcsTime != "" {
				rev += ", " + vcsTime
			}
		}
	}
	if version == "" {
		version = "(devel)"
	}
	fmt.Fprintf(&b, "simclr %s", version)
	if rev != "" {
		fmt.Fprintf(&b, ", %s", rev)
	}
	fmt.Fprintf(&b, "; %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	switch v := dnnl.Version(); {
	case v == "":
		b.WriteString("backend: reference (plain Go; built without oneDNN)\n")
	case dnnl.Available():
		fmt.Fprintf(&b, "backend: dnnl (oneDNN %s)\n", v)
	default:
		fmt.Fprintf(&b, "backend: reference (oneDNN %s is linked but could not be initialised)\n", v)
	}
	return b.String()
}
