package compose

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestImageBinaries builds the worker and the starter natively with the `go build`
// line of the Dockerfile itself (its flags and variables, expanded by BuildKit's
// lexer with a test VERSION), then checks that they would start on an empty base
// (static ELF), that --version prints the stamped version, and that the starter
// accepts the sample policy of compose.yaml and refuses a broken one.
func TestImageBinaries(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the images are Linux ELF binaries")
	}
	df, err := ParseDockerfile(dockerfilePath(t))
	if err != nil {
		t.Fatal(err)
	}
	const version = "v9.9.9-compose-check"
	builds, err := df.GoBuilds(map[string]string{"VERSION": version, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	if len(builds) != 1 {
		t.Fatalf("the Dockerfile runs %d go builds; this test expects one building both binaries", len(builds))
	}
	b := builds[0]
	out := t.TempDir()
	args := []string{"build"}
	for i := 0; i < len(b.Flags); i++ {
		if f := strings.TrimLeft(b.Flags[i], "-"); f == "o" {
			i++ // replaced below: the image writes to /out/
			continue
		} else if strings.HasPrefix(f, "o=") {
			continue
		}
		args = append(args, b.Flags[i])
	}
	args = append(args, "-o", out+string(filepath.Separator))
	args = append(args, b.Packages...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root(t) // the image builds from the repository root (WORKDIR /src, COPY . .)
	cmd.Env = os.Environ()
	for k, v := range b.Env {
		// Only the Go settings of the stage: its PATH and the like describe the
		// golang image, not this machine.
		if strings.HasPrefix(k, "GO") || strings.HasPrefix(k, "CGO_") {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	t.Logf("go %s (CGO_ENABLED=%s GOOS=%s GOARCH=%s)", strings.Join(args, " "), b.Env["CGO_ENABLED"], b.Env["GOOS"], b.Env["GOARCH"])
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	for _, name := range []string{"worker", "starter"} {
		bin := filepath.Join(out, name)
		if err := CheckStatic(bin); err != nil {
			t.Errorf("%s would not start on scratch: %v", name, err)
		}
		v, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(v), version) {
			t.Errorf("%s --version: %q, %v; want %s", name, v, err, version)
		}
	}

	starter := filepath.Join(out, "starter")
	validate := func(file string) (string, int) {
		cmd := exec.Command(starter, "policy", "validate", "--config", file)
		cmd.Env = []string{"PATH=/usr/bin:/bin"} // nothing of this machine's replicator settings
		msg, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(msg), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(msg), 0
	}
	if msg, code := validate(filepath.Join(dir(t), "replicator.yaml")); code != 0 {
		t.Errorf("starter policy validate refuses the sample policy (exit %d):\n%s", code, msg)
	}
	if msg, code := validate(filepath.Join(dir(t), "testdata", "broken", "replicator.yaml")); code != 2 || !strings.Contains(msg, "unknown_field") {
		t.Errorf("starter policy validate on a policy with an unknown field: exit %d, %q; want exit 2 naming the field", code, msg)
	}
}

// TestCheckStaticRefusesDynamicBinaries: CheckStatic must tell a dynamically linked
// program, such as the system's own, from the static ones above.
func TestCheckStaticRefusesDynamicBinaries(t *testing.T) {
	for _, p := range []string{"/bin/sh", "/usr/bin/env", "/bin/ls"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := CheckStatic(p); err == nil {
			t.Logf("%s is static here; trying another", p)
			continue
		}
		return
	}
	t.Skip("no dynamically linked program found on this machine")
}
