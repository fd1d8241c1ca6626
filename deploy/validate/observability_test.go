package validate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

func observability(t *testing.T, parts ...string) string {
	return filepath.Join(append([]string{repoRoot(t), "deploy", "observability"}, parts...)...)
}

// expressions returns every PromQL expression of the alert rules and the dashboard,
// with Grafana's variables replaced by values PromQL accepts.
func expressions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile(observability(t, "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	b, err = os.ReadFile(observability(t, "grafana", "replicator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	vars := strings.NewReplacer("$policy", ".*", "$__rate_interval", "5m", "$__range", "1h")
	for _, p := range dash.Panels {
		for i, target := range p.Targets {
			out[fmt.Sprintf("panel %q target %d", p.Title, i)] = vars.Replace(target.Expr)
		}
	}
	return out
}

// metricNames parses every expression with Prometheus's PromQL parser and returns
// the metric names they select.
func metricNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for where, expr := range expressions(t) {
		e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
		if err != nil {
			t.Errorf("%s: PromQL refuses %q: %v", where, expr, err)
			continue
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" && !slices.Contains(names, vs.Name) {
				names = append(names, vs.Name)
			}
			return nil
		})
	}
	slices.Sort(names)
	return names
}

func TestAlertRulesAndDashboardParse(t *testing.T) {
	names := metricNames(t)
	if len(names) < 10 {
		t.Fatalf("only %d metrics used: %v", len(names), names)
	}
}

// TestPromtool runs promtool check rules and its unit tests of the alerts.
func TestPromtool(t *testing.T) {
	bin := os.Getenv("REPLICATOR_TOOLS_BIN")
	if bin == "" {
		t.Skip("REPLICATOR_TOOLS_BIN is unset: run through make test, which installs promtool")
	}
	promtool := filepath.Join(bin, "promtool")
	if _, err := os.Stat(promtool); err != nil {
		t.Fatalf("promtool is missing from %s: bash deploy/local/install.sh promtool", bin)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = observability(t, "prometheus")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestMetricsExistOnARunningWorker runs a worker (with a copy, a reconcile and a
// bidirectional policy behind it) and checks that every metric the rules and the
// dashboard use is one it exports.
func TestMetricsExistOnARunningWorker(t *testing.T) {
	if os.Getenv("TEMPORAL_ADDRESS") == "" {
		t.Skip("TEMPORAL_ADDRESS is unset: run through make test, which starts a Temporal dev server")
	}
	dir := t.TempDir()
	for _, name := range []string{"worker", "starter"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./"+name)
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	for _, d := range []string{"state", "src", "dst", "a", "b"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "f.txt"), []byte("observed"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A bucket destination too, so that the storage request counters have series:
	// a bucket on fake-gcs-server, created with its JSON API.
	gcsHost := os.Getenv("STORAGE_EMULATOR_HOST")
	if gcsHost == "" {
		t.Fatal("STORAGE_EMULATOR_HOST is unset: source deploy/local/env.sh")
	}
	resp, err := http.Post("http://"+gcsHost+"/storage/v1/b?project=replicator", "application/json", strings.NewReader(`{"name":"observability"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusConflict {
		t.Fatalf("create the GCS bucket: %s", resp.Status)
	}
	suffix := fmt.Sprint(time.Now().UnixNano())
	cfg := fmt.Sprintf(`state: file://%[1]s/state
policies:
  - name: obs-%[2]s
    source: file://%[1]s/src
    mode: mirror
    destinations: [{name: copy, url: "file://%[1]s/dst"}, {name: gcs, url: "gs://observability/%[2]s"}]
  - name: obs-bi-%[2]s
    source: file://%[1]s/a
    mode: bidirectional
    destinations: [{name: side-b, url: "file://%[1]s/b"}]
`, dir, suffix)
	config := filepath.Join(dir, "replicator.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	worker := exec.Command(filepath.Join(dir, "worker"), "--config", config, "--metrics-addr", addr)
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Process.Kill(); _ = worker.Wait() })
	starter := func(args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(dir, "starter"), append([]string{"--config", config}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("starter %v: %v\n%s", args, err, out)
		}
	}
	starter("replicate", "--policy", "obs-"+suffix, "--wait", "f.txt")
	starter("reconcile", "--policy", "obs-"+suffix, "--wait")
	starter("reconcile", "--policy", "obs-bi-"+suffix, "--wait")

	exported := map[string]bool{}
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exported[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	for _, name := range metricNames(t) {
		if name == "up" {
			continue // Prometheus's own, per scrape target
		}
		if !exported[name] {
			t.Errorf("the rules or the dashboard use %s, which the worker does not export", name)
		}
	}
}
