// Package version holds the version the worker and the starter report with
// --version: stamped at build time, else read from the build information Go embeds.
package version

import (
	"runtime/debug"
	"strings"
)

// Version is stamped by the scripts that build the binaries, with
//
//	go build -ldflags "-X github.com/cloudrepl/replicator/internal/version.Version=$(git describe --always --dirty)"
//
// It stays empty in a plain `go build`, and String then falls back to what the
// toolchain recorded.
var Version string

// String is the version to print: the stamped one, else the module version (set by
// `go install module@version`), else the VCS revision Go records when it builds
// inside a checkout (with "-dirty" for uncommitted changes), else "devel".
func String() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return fromBuildInfo(info)
}

// fromBuildInfo picks the most specific version info holds.
func fromBuildInfo(info *debug.BuildInfo) string {
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	var b strings.Builder
	b.WriteString("devel-" + rev)
	if modified == "true" {
		b.WriteString("-dirty")
	}
	return b.String()
}
