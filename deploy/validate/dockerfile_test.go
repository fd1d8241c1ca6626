package validate

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// repoRoot is the replicator's repository, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func dockerStages(t *testing.T) map[string]instructions.Stage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("BuildKit refuses the Dockerfile: %v", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("BuildKit refuses the Dockerfile's instructions: %v", err)
	}
	out := map[string]instructions.Stage{}
	for _, s := range stages {
		out[s.Name] = s
	}
	return out
}

// TestDockerfileMakesSmallStaticNonRootImages: the worker and starter stages start
// from an empty base, copy one binary built without cgo with the version stamped,
// and run as a numeric user other than root.
func TestDockerfileMakesSmallStaticNonRootImages(t *testing.T) {
	stages := dockerStages(t)
	build, ok := stages["build"]
	if !ok {
		t.Fatal("no build stage")
	}
	var cgoOff, stamped bool
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				cgoOff = cgoOff || kv.Key == "CGO_ENABLED" && kv.Value == "0"
			}
		case *instructions.RunCommand:
			line := strings.Join(c.CmdLine, " ")
			stamped = stamped || strings.Contains(line, "-X github.com/cloudrepl/replicator/internal/version.Version=${VERSION}")
		}
	}
	if !cgoOff || !stamped {
		t.Errorf("build stage: CGO_ENABLED=0 %v, version stamped %v; want both", cgoOff, stamped)
	}
	for _, name := range []string{"worker", "starter"} {
		s, ok := stages[name]
		if !ok {
			t.Errorf("no %s stage (docker build --target %s)", name, name)
			continue
		}
		if s.BaseName != "scratch" && !strings.HasPrefix(s.BaseName, "gcr.io/distroless/static") {
			t.Errorf("%s: base %q; want scratch or distroless static", name, s.BaseName)
		}
		var user string
		var binary, entry bool
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.UserCommand:
				user = c.User
			case *instructions.CopyCommand:
				binary = binary || c.From == "build" && strings.HasSuffix(c.DestPath, "/"+name)
			case *instructions.EntrypointCommand:
				entry = len(c.CmdLine) == 1 && strings.HasSuffix(c.CmdLine[0], "/"+name)
			}
		}
		uid, err := strconv.Atoi(strings.Split(user, ":")[0])
		if err != nil || uid == 0 {
			t.Errorf("%s: USER %q; want a numeric user other than root", name, user)
		}
		if !binary || !entry {
			t.Errorf("%s: copies its binary from the build stage %v, runs it as the entrypoint %v", name, binary, entry)
		}
	}
}

// TestBinariesAreStatic builds both binaries natively with the image's flags and
// checks that they need no dynamic loader or library (they run on scratch) and print
// the stamped version.
func TestBinariesAreStatic(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ELF checks need Linux")
	}
	out := t.TempDir()
	const version = "v9.9.9-image-check"
	for _, name := range []string{"worker", "starter"} {
		bin := filepath.Join(out, name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/cloudrepl/replicator/internal/version.Version="+version, "-o", bin, "./"+name)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, b)
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked (program header %v): it would not start on scratch", name, p.Type)
			}
		}
		libs, _ := f.ImportedLibraries()
		f.Close()
		if len(libs) > 0 {
			t.Errorf("%s needs %v", name, libs)
		}
		v, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(v), version) {
			t.Errorf("%s --version: %q, %v; want %s", name, v, err, version)
		}
	}
}
