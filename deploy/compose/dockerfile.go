package compose

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// VersionVar is the variable the binaries print with --version; the image must set
// it with -ldflags -X.
const VersionVar = "github.com/cloudrepl/replicator/internal/version.Version"

// Dockerfile is a Dockerfile as BuildKit reads it: its stages in order, and the ARGs
// declared before the first FROM.
type Dockerfile struct {
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand
}

// ParseDockerfile parses the file at path with BuildKit's parser and instruction
// decoder, so what it accepts is what `docker build` accepts.
func ParseDockerfile(path string) (*Dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Dockerfile{Stages: stages, MetaArgs: metaArgs}, nil
}

// Stage returns the stage named name (docker build --target name).
func (d *Dockerfile) Stage(name string) (*instructions.Stage, bool) {
	for i := range d.Stages {
		if strings.EqualFold(d.Stages[i].Name, name) {
			return &d.Stages[i], true
		}
	}
	return nil, false
}

// env is the variables a RUN or ENV of a stage sees while it is built.
type env map[string]string

func (e env) Get(k string) (string, bool) { v, ok := e[k]; return v, ok }

func (e env) Keys() []string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var lex = shell.NewLex('\\')

// walk calls fn with every command of the stage and the variables it sees: the
// base stage's ENV when the stage is built FROM another stage, then the stage's own
// ARGs (buildArgs overriding their defaults; a global ARG is visible only when the
// stage declares it again, as in BuildKit) and ENVs in order.
func (d *Dockerfile) walk(stage *instructions.Stage, buildArgs map[string]string, fn func(instructions.Command, env) error) error {
	vars := env{}
	if base, ok := d.Stage(stage.BaseName); ok && base != stage {
		if err := d.walk(base, buildArgs, func(c instructions.Command, e env) error {
			if ec, ok := c.(*instructions.EnvCommand); ok {
				for _, kv := range ec.Env {
					v, _, err := lex.ProcessWord(kv.Value, e)
					if err != nil {
						return err
					}
					vars[kv.Key] = v
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	global := env{}
	for _, a := range d.MetaArgs {
		for _, kv := range a.Args {
			if v, ok := buildArgs[kv.Key]; ok {
				global[kv.Key] = v
			} else if kv.Value != nil {
				global[kv.Key] = *kv.Value
			}
		}
	}
	for _, c := range stage.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				switch v, ok := buildArgs[kv.Key]; {
				case ok:
					vars[kv.Key] = v
				case kv.Value != nil:
					val, _, err := lex.ProcessWord(*kv.Value, vars)
					if err != nil {
						return err
					}
					vars[kv.Key] = val
				default:
					if g, ok := global[kv.Key]; ok {
						vars[kv.Key] = g
					} else {
						vars[kv.Key] = ""
					}
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				v, _, err := lex.ProcessWord(kv.Value, vars)
				if err != nil {
					return err
				}
				vars[kv.Key] = v
			}
		}
		if err := fn(c, vars); err != nil {
			return err
		}
	}
	return nil
}

// StageEnv returns the ENV variables a container of the stage starts with.
func (d *Dockerfile) StageEnv(name string) (map[string]string, error) {
	stage, ok := d.Stage(name)
	if !ok {
		return nil, fmt.Errorf("no stage %s", name)
	}
	out := map[string]string{}
	err := d.walk(stage, nil, func(c instructions.Command, e env) error {
		if ec, ok := c.(*instructions.EnvCommand); ok {
			for _, kv := range ec.Env {
				out[kv.Key] = e[kv.Key]
			}
		}
		return nil
	})
	return out, err
}

// GoBuild is a `go build` command found in a RUN instruction, with the stage's
// variables expanded.
type GoBuild struct {
	// Stage is the stage that runs it.
	Stage string
	// Env is the stage's variables at that RUN plus the assignments prefixed to the
	// command (GOOS=… GOARCH=… go build).
	Env map[string]string
	// Flags are the arguments before the packages, Packages the rest.
	Flags, Packages []string
	// Output is the -o value: a directory when it ends with a slash.
	Output string
	// LDFlags is the -ldflags value.
	LDFlags string
	// Trimpath tells whether -trimpath is set.
	Trimpath bool
}

// GoBuilds returns every `go build` of the Dockerfile's RUN instructions, expanded
// with buildArgs the way BuildKit expands them (its own shell lexer), so a variable
// the stage does not declare comes out empty here as it would in the image.
func (d *Dockerfile) GoBuilds(buildArgs map[string]string) ([]GoBuild, error) {
	var out []GoBuild
	for i := range d.Stages {
		stage := &d.Stages[i]
		err := d.walk(stage, buildArgs, func(c instructions.Command, e env) error {
			run, ok := c.(*instructions.RunCommand)
			if !ok {
				return nil
			}
			words, err := lex.ProcessWords(strings.Join(run.CmdLine, " "), e)
			if err != nil {
				return err
			}
			for _, cmd := range splitCommands(words) {
				b, ok := parseGoBuild(cmd, e)
				if ok {
					b.Stage = stage.Name
					out = append(out, b)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// splitCommands cuts a RUN line's words at the shell's command separators.
func splitCommands(words []string) [][]string {
	var out [][]string
	var cur []string
	for _, w := range words {
		switch w {
		case "&&", "||", ";", "|":
			out = append(out, cur)
			cur = nil
		default:
			cur = append(cur, strings.TrimSuffix(w, ";"))
		}
	}
	return append(out, cur)
}

func parseGoBuild(words []string, stageEnv env) (GoBuild, bool) {
	b := GoBuild{Env: map[string]string{}}
	for k, v := range stageEnv {
		b.Env[k] = v
	}
	i := 0
	for ; i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-"); i++ {
		k, v, _ := strings.Cut(words[i], "=")
		b.Env[k] = v
	}
	if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
		return GoBuild{}, false
	}
	args := words[i+2:]
	for j := 0; j < len(args); j++ {
		a := args[j]
		if !strings.HasPrefix(a, "-") {
			b.Packages = args[j:]
			break
		}
		b.Flags = append(b.Flags, a)
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "trimpath":
			b.Trimpath = !hasVal || val == "true"
		case "o", "ldflags", "tags", "gcflags", "mod", "p":
			if !hasVal && j+1 < len(args) {
				j++
				val = args[j]
				b.Flags = append(b.Flags, val)
			}
			switch name {
			case "o":
				b.Output = val
			case "ldflags":
				b.LDFlags = val
			}
		}
	}
	return b, true
}

// ImageTarget is a final stage the Dockerfile must provide: docker build --target
// Name gives an image running Binary.
type ImageTarget struct {
	Name   string
	Binary string
}

// CheckDockerfile returns every way the Dockerfile misses small, static, non-root
// images for targets: a multi-stage build; a `go build` with cgo off, -trimpath and
// the version stamped from ARG VERSION; and for each target a base that is empty
// (scratch) or distroless static, a numeric non-root USER, CA certificates, a
// writable /tmp, and the binary of the build stage as the entrypoint.
func CheckDockerfile(d *Dockerfile, targets []ImageTarget) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if len(d.Stages) < 2 {
		report("single stage: the image would carry the Go toolchain; build in one stage and copy the binaries into an empty one")
	}
	const probe = "v0.0.0-dockerfile-check"
	builds, err := d.GoBuilds(map[string]string{"VERSION": probe, "TARGETOS": "linux", "TARGETARCH": "amd64"})
	if err != nil {
		report("expanding the RUN lines: %v", err)
	}
	if len(builds) == 0 {
		report("no `go build` in any RUN instruction")
	}
	built := map[string]string{} // binary -> path in its stage
	buildStage := map[string]string{}
	for _, b := range builds {
		if b.Env["CGO_ENABLED"] != "0" {
			report("stage %s: go build with CGO_ENABLED=%q; set CGO_ENABLED=0 so the binary needs no C library", b.Stage, b.Env["CGO_ENABLED"])
		}
		if !b.Trimpath {
			report("stage %s: go build without -trimpath", b.Stage)
		}
		if !strings.Contains(b.LDFlags, "-X "+VersionVar+"="+probe) && !strings.Contains(b.LDFlags, "-X="+VersionVar+"="+probe) {
			report("stage %s: -ldflags %q does not stamp %s from ARG VERSION (built with VERSION=%s)", b.Stage, b.LDFlags, VersionVar, probe)
		}
		for _, pkg := range b.Packages {
			name := pkg[strings.LastIndex(pkg, "/")+1:]
			switch {
			case strings.HasSuffix(b.Output, "/"):
				built[name] = b.Output + name
			case b.Output != "" && len(b.Packages) == 1:
				built[name] = b.Output
			}
			buildStage[name] = b.Stage
		}
	}
	for _, t := range targets {
		stage, ok := d.Stage(t.Name)
		if !ok {
			report("no stage %s (docker build --target %s)", t.Name, t.Name)
			continue
		}
		for s := stage; s != nil; {
			if stageHasBuild(s, builds) {
				report("%s: the image is the stage that runs go build (or is built FROM it), so it carries the Go toolchain and the sources; copy the binary into a stage of its own", t.Name)
				break
			}
			base, ok := d.Stage(s.BaseName)
			if !ok || base == s {
				break
			}
			s = base
		}
		distroless := strings.HasPrefix(stage.BaseName, "gcr.io/distroless/static")
		if stage.BaseName != "scratch" && !distroless {
			report("%s: FROM %s; want scratch or gcr.io/distroless/static", t.Name, stage.BaseName)
		}
		var user string
		var entry []string
		var certs, tmp, tmpWritable, binary bool
		for _, c := range stage.Commands {
			switch c := c.(type) {
			case *instructions.UserCommand:
				user = c.User
			case *instructions.EntrypointCommand:
				entry = c.CmdLine
				if c.PrependShell {
					report("%s: ENTRYPOINT in shell form needs /bin/sh, which the image does not have", t.Name)
				}
			case *instructions.CopyCommand:
				from, _ := d.Stage(c.From)
				for _, src := range c.SourcePaths {
					dest := c.DestPath
					if strings.HasSuffix(dest, "/") {
						dest += src[strings.LastIndex(src, "/")+1:]
					}
					switch {
					case dest == "/etc/ssl/certs/ca-certificates.crt":
						certs = true
					case strings.TrimSuffix(dest, "/") == "/tmp":
						// BuildKit creates the destination with the source's mode:
						// the source stage must make it world-writable and sticky.
						tmp = true
						tmpWritable = from != nil && stageRuns(from, "chmod 1777 "+strings.TrimSuffix(src, "/"))
						if !tmpWritable {
							report("%s: /tmp comes from %s of stage %q, which no RUN makes `chmod 1777`", t.Name, src, c.From)
						}
					}
					if p, ok := built[t.Binary]; ok && c.From == buildStage[t.Binary] && src == p {
						binary = true
						if dest != "" && !strings.HasSuffix(dest, "/"+t.Binary) {
							report("%s: the binary is copied to %s", t.Name, dest)
						}
					}
				}
			}
		}
		if !certs && !distroless {
			report("%s: no /etc/ssl/certs/ca-certificates.crt: TLS to the clouds would fail", t.Name)
		}
		if !tmp && !distroless {
			report("%s: no /tmp: reconciles write their plan to os.TempDir", t.Name)
		}
		if !binary {
			report("%s: does not copy %s as built by the go build (%v)", t.Name, t.Binary, built)
		}
		if len(entry) != 1 || !strings.HasSuffix(entry[0], "/"+t.Binary) {
			report("%s: ENTRYPOINT %q; want the %s binary alone (exec form)", t.Name, entry, t.Binary)
		}
		if err := nonRootUser(user); err != nil {
			report("%s: %v", t.Name, err)
		}
	}
	return problems
}

// stageHasBuild tells whether one of builds runs in the stage.
func stageHasBuild(stage *instructions.Stage, builds []GoBuild) bool {
	return slices.ContainsFunc(builds, func(b GoBuild) bool { return strings.EqualFold(b.Stage, stage.Name) })
}

// stageRuns tells whether a RUN of the stage contains text.
func stageRuns(stage *instructions.Stage, text string) bool {
	for _, c := range stage.Commands {
		if run, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(run.CmdLine, " "), text) {
			return true
		}
	}
	return false
}

// nonRootUser accepts only a numeric uid other than 0 (and a numeric gid, when
// given): Kubernetes' runAsNonRoot cannot verify a user name, and a name would need
// an /etc/passwd lookup to mean anything.
func nonRootUser(user string) error {
	if user == "" {
		return errors.New("no USER: the container would run as root")
	}
	uid, gid, hasGID := strings.Cut(user, ":")
	n, err := strconv.Atoi(uid)
	if err != nil {
		return fmt.Errorf("USER %q is not a numeric uid", user)
	}
	if n == 0 {
		return fmt.Errorf("USER %q is root", user)
	}
	if hasGID {
		if _, err := strconv.Atoi(gid); err != nil {
			return fmt.Errorf("USER %q: the group is not numeric", user)
		}
	}
	return nil
}
