package compose

import (
	"context"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// LoadProject loads a Compose file with compose-go, every profile enabled so that
// services started only by `docker compose run` are checked too. It reads no .env
// file and no environment of the caller: the file must stand on its own.
func LoadProject(ctx context.Context, file string) (*types.Project, error) {
	dir := filepath.Dir(file)
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(dir), cli.WithName("replicator"), cli.WithProfiles([]string{"*"}))
	if err != nil {
		return nil, err
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("compose-go refuses %s: %w", file, err)
	}
	return p, nil
}

// Expect is what the deployment must provide, named as the Compose file names it.
type Expect struct {
	// Worker is the workers' service, Temporal the server's, SearchAttributes the
	// one-shot job registering them.
	Worker, Temporal, SearchAttributes string
	// Replicas is the number of workers.
	Replicas int
	// Attributes are the search attributes the workflows set (name: Temporal type).
	Attributes map[string]string
	// Dockerfile is the file the worker's image is built from, parsed; DockerfilePath
	// its path on this machine.
	Dockerfile     *Dockerfile
	DockerfilePath string
}

// Worker is what CheckProject found out about the workers' service, for the other
// checks: where its metrics are and which policy file it reads.
type Worker struct {
	// MetricsHost and MetricsPort are the effective --metrics-addr.
	MetricsHost string
	MetricsPort int
	// ConfigPath is the host file mounted where the worker reads its config.
	ConfigPath string
	// Env is the service's environment.
	Env map[string]string
	// Volumes maps container paths to the mount there.
	Volumes map[string]types.ServiceVolumeConfig
	// Jobs are the one-shot services the worker waits for (completed successfully).
	Jobs map[string]types.ServiceConfig
}

// CheckProject returns every way the project misses what the deployment relies on,
// and what it found out about the worker. Workers are checked through the
// effective value of each setting: a flag of the command, else the service's
// environment, else the image's ENV, else the binary's default.
func CheckProject(p *types.Project, want Expect) (Worker, []string) {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	all := allServices(p)

	for _, name := range sortedKeys(all) {
		s := all[name]
		if s.Image == "" && s.Build == nil {
			report("%s: neither image nor build", name)
		}
		if s.Image != "" {
			if err := pinned(s.Image); err != nil {
				report("%s: %v", name, err)
			}
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				report("%s: port %d is published on %q; publish on 127.0.0.1 only (it is a development stack with known secrets)", name, port.Target, hostIPOrAll(port.HostIP))
			}
		}
	}

	var w Worker
	ws, ok := all[want.Worker]
	if !ok {
		report("no %s service", want.Worker)
		return w, problems
	}
	if ws.Deploy == nil || ws.Deploy.Replicas == nil || *ws.Deploy.Replicas != want.Replicas {
		got := "unset"
		if ws.Deploy != nil && ws.Deploy.Replicas != nil {
			got = strconv.Itoa(*ws.Deploy.Replicas)
		}
		report("%s: deploy.replicas is %s; want %d", want.Worker, got, want.Replicas)
	}
	var imageEnv map[string]string
	switch b := ws.Build; {
	case b == nil:
		report("%s: not built from %s", want.Worker, want.DockerfilePath)
	default:
		df := b.Dockerfile
		if !filepath.IsAbs(df) {
			df = filepath.Join(b.Context, df)
		}
		if same, err := sameFile(df, want.DockerfilePath); err != nil || !same {
			report("%s: built from %s, not %s (%v)", want.Worker, df, want.DockerfilePath, err)
		}
		if _, ok := want.Dockerfile.Stage(b.Target); !ok || b.Target == "" {
			report("%s: build target %q is not a stage of the Dockerfile", want.Worker, b.Target)
		} else {
			imageEnv, _ = want.Dockerfile.StageEnv(b.Target)
		}
	}

	w.Env = map[string]string{}
	for k, v := range imageEnv {
		w.Env[k] = v
	}
	for k, v := range ws.Environment {
		if v != nil {
			w.Env[k] = *v
		}
	}

	// Start order: Temporal must answer and the search attributes must exist, or
	// the first workflows fail to start or to set their attributes.
	temporal, ok := all[want.Temporal]
	switch {
	case !ok:
		report("no %s service", want.Temporal)
	case ws.DependsOn[want.Temporal].Condition != types.ServiceConditionHealthy:
		report("%s: does not wait for %s to be healthy (depends_on %s: %q)", want.Worker, want.Temporal, want.Temporal, ws.DependsOn[want.Temporal].Condition)
	case temporal.HealthCheck == nil || temporal.HealthCheck.Disable || len(temporal.HealthCheck.Test) == 0:
		report("%s: no healthcheck, so service_healthy never holds", want.Temporal)
	}
	if d, ok := ws.DependsOn[want.SearchAttributes]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		report("%s: does not wait for %s to complete successfully", want.Worker, want.SearchAttributes)
	}
	w.Jobs = map[string]types.ServiceConfig{}
	for name, d := range ws.DependsOn {
		if d.Condition == types.ServiceConditionCompletedSuccessfully {
			if s, ok := all[name]; ok {
				w.Jobs[name] = s
			}
		}
	}
	if sa, ok := all[want.SearchAttributes]; !ok {
		report("no %s service", want.SearchAttributes)
	} else {
		checkSearchAttributes(sa, want.Attributes, report)
	}

	// Temporal's address must name a service of the project that listens there.
	if addr, ok := w.Env["TEMPORAL_ADDRESS"]; !ok {
		report("%s: no TEMPORAL_ADDRESS: it would dial 127.0.0.1:7233, its own container", want.Worker)
	} else if host, port, err := net.SplitHostPort(addr); err != nil {
		report("%s: TEMPORAL_ADDRESS %q: %v", want.Worker, addr, err)
	} else if s, ok := all[host]; !ok {
		report("%s: TEMPORAL_ADDRESS %q names no service", want.Worker, addr)
	} else if !listens(s, port) {
		report("%s: TEMPORAL_ADDRESS %q: %s declares no port %s", want.Worker, addr, host, port)
	}

	// Metrics must listen on the container's address, or Prometheus, in another
	// container, cannot scrape them.
	metrics := flagValue(ws.Command, "metrics-addr")
	if metrics == "" {
		metrics = w.Env["REPLICATOR_METRICS_ADDR"]
	}
	if metrics == "" {
		metrics = "127.0.0.1:9464" // the worker's default
	}
	host, port, err := net.SplitHostPort(metrics)
	w.MetricsHost = host
	w.MetricsPort, _ = strconv.Atoi(port)
	if err != nil || w.MetricsPort == 0 {
		report("%s: metrics address %q: %v", want.Worker, metrics, err)
	} else if host != "" && host != "0.0.0.0" && host != "::" && host != "[::]" {
		report("%s: metrics listen on %s, unreachable from Prometheus's container; use 0.0.0.0:%s", want.Worker, metrics, port)
	}

	// SIGTERM gives running transfers --stop-timeout; Compose's SIGKILL must come later.
	stop := 30 * time.Second
	if v := flagValue(ws.Command, "stop-timeout"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			stop = d
		} else {
			report("%s: --stop-timeout %q: %v", want.Worker, v, err)
		}
	}
	grace := 10 * time.Second // Compose's default
	if ws.StopGracePeriod != nil {
		grace = time.Duration(*ws.StopGracePeriod)
	}
	if grace <= stop {
		report("%s: stop_grace_period %v does not outlast --stop-timeout %v: transfers would be killed", want.Worker, grace, stop)
	}

	// The policy file: the path the worker reads must be a mounted file that exists.
	w.Volumes = map[string]types.ServiceVolumeConfig{}
	for _, v := range ws.Volumes {
		w.Volumes[path.Clean(v.Target)] = v
	}
	config := flagValue(ws.Command, "config")
	if config == "" {
		config = w.Env["REPLICATOR_CONFIG"]
	}
	if config == "" {
		config = path.Join(orRoot(ws.WorkingDir), "replicator.yaml")
	}
	if v, ok := w.Volumes[path.Clean(config)]; !ok || v.Type != types.VolumeTypeBind {
		report("%s: reads its policies from %s, which no bind mount provides", want.Worker, config)
	} else if fi, err := os.Stat(v.Source); err != nil || fi.IsDir() {
		report("%s: the policy file %s mounted at %s: %v", want.Worker, v.Source, config, statProblem(fi, err))
	} else {
		w.ConfigPath = v.Source
	}
	if cfgEnv, ok := w.Env["REPLICATOR_CONFIG"]; ok && path.Clean(cfgEnv) != path.Clean(config) {
		report("%s: --config %s and REPLICATOR_CONFIG %s differ: the starter, which reads the variable, would see other policies", want.Worker, config, cfgEnv)
	}
	return w, problems
}

var attributePair = regexp.MustCompile(`\b(\w+)=(Keyword|Int|Text|Bool|Double|Datetime|KeywordList)\b`)

// checkSearchAttributes compares the attributes the job registers, written
// Name=Type in its command, with those the workflows set.
func checkSearchAttributes(s types.ServiceConfig, want map[string]string, report func(string, ...any)) {
	cmd := strings.Join(append(slices.Clone(s.Entrypoint), s.Command...), " ")
	if !strings.Contains(cmd, "operator search-attribute create") {
		report("%s: does not run `temporal operator search-attribute create`", s.Name)
	}
	got := map[string]string{}
	for _, m := range attributePair.FindAllStringSubmatch(cmd, -1) {
		got[m[1]] = m[2]
	}
	for name, typ := range want {
		if got[name] != typ {
			report("%s: registers %s as %q; the workflows set it as %s", s.Name, name, got[name], typ)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			report("%s: registers %s, which no workflow sets", s.Name, name)
		}
	}
}

// pinned accepts an image reference with a tag other than latest, or a digest.
func pinned(image string) error {
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("image %q has no tag: it follows latest", image)
	case tag == "latest":
		return fmt.Errorf("image %q is not pinned to a version", image)
	}
	return nil
}

// flagValue returns the value of --name (or -name) in a Go flag command line,
// either "--name value" or "--name=value".
func flagValue(args []string, name string) string {
	for i, a := range args {
		trimmed := strings.TrimLeft(a, "-")
		if trimmed == a {
			continue
		}
		if trimmed == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			return v
		}
	}
	return ""
}

// listens tells whether the service declares the container port (ports or expose).
func listens(s types.ServiceConfig, port string) bool {
	for _, p := range s.Ports {
		if strconv.Itoa(int(p.Target)) == port {
			return true
		}
	}
	for _, e := range s.Expose {
		if strings.Split(e, "/")[0] == port {
			return true
		}
	}
	return false
}

// allServices returns the enabled services and those of profiles not enabled.
func allServices(p *types.Project) types.Services {
	out := types.Services{}
	for n, s := range p.DisabledServices {
		out[n] = s
	}
	for n, s := range p.Services {
		out[n] = s
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

func hostIPOrAll(ip string) string {
	if ip == "" {
		return "every address"
	}
	return ip
}

func orRoot(dir string) string {
	if dir == "" {
		return "/"
	}
	return dir
}

func statProblem(fi os.FileInfo, err error) string {
	if err != nil {
		return err.Error()
	}
	if fi.IsDir() {
		return "a directory, not a file"
	}
	return "ok"
}
