package validate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

func composeProject(t *testing.T) *types.Project {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy", "compose")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")}, cli.WithWorkingDirectory(dir), cli.WithName("replicator"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go refuses deploy/compose/compose.yaml: %v", err)
	}
	return p
}

// TestComposeFile loads the Compose file with compose-go (what docker compose uses)
// and checks what the deployment relies on.
func TestComposeFile(t *testing.T) {
	p := composeProject(t)
	for _, name := range []string{"postgresql", "temporal", "search-attributes", "temporal-ui", "worker", "minio", "fake-gcs", "azurite", "prometheus", "grafana"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no %s service", name)
		}
	}
	for name, s := range p.Services {
		if s.Image == "" || strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":") {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q; publish on 127.0.0.1 only", name, port.Published, port.HostIP)
			}
		}
	}
	w := p.Services["worker"]
	if w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas != 2 {
		t.Errorf("worker replicas: %+v; want 2", w.Deploy)
	}
	if w.Build == nil || w.Build.Target != "worker" || !strings.HasSuffix(filepath.ToSlash(w.Build.Dockerfile), "deploy/docker/Dockerfile") {
		t.Errorf("worker build: %+v; want deploy/docker/Dockerfile, target worker", w.Build)
	}
	if v := w.Environment["TEMPORAL_ADDRESS"]; v == nil || *v != "temporal:7233" {
		t.Errorf("worker TEMPORAL_ADDRESS = %v", v)
	}
	if d, ok := w.DependsOn["search-attributes"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("the worker must start after the search attributes are registered: %+v", w.DependsOn)
	}
	cmd := strings.Join(w.Command, " ")
	if !strings.Contains(cmd, "--metrics-addr 0.0.0.0:9464") {
		t.Errorf("worker command %q: metrics must listen on the container's address for Prometheus", cmd)
	}
	if w.StopGracePeriod == nil || int64(*w.StopGracePeriod) <= int64(30e9) || !strings.Contains(cmd, "--stop-timeout 30s") {
		t.Errorf("stop grace period %v must outlast --stop-timeout in %q", w.StopGracePeriod, cmd)
	}
	var config string
	for _, v := range w.Volumes {
		if v.Target == "/etc/replicator/replicator.yaml" {
			config = v.Source
		}
	}
	if config == "" {
		t.Fatal("the worker mounts no replicator.yaml")
	}
	if _, err := os.Stat(config); err != nil {
		t.Errorf("the sample policy %s: %v", config, err)
	}
	sa := p.Services["search-attributes"]
	for _, want := range []string{"ReplicationPolicy=Keyword", "ReplicationKey=Keyword", "ReplicationOutcome=Keyword", "ReplicationBytes=Int", "ReplicationConflicts=Int"} {
		if !strings.Contains(strings.Join(sa.Command, " "), want) {
			t.Errorf("search attribute %s is not registered", want)
		}
	}
}

// TestPrometheusScrapesTheWorkers: the scrape configuration reaches every worker
// replica on its metrics port.
func TestPrometheusScrapesTheWorkers(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "compose", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !strings.Contains(err.Error(), "global") {
		t.Fatalf("prometheus.yml: %v", err)
	}
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		for _, d := range sc.DNSSDConfigs {
			found = found || slices.Contains(d.Names, "worker") && d.Port == 9464
		}
		for _, s := range sc.StaticConfigs {
			found = found || slices.Contains(s.Targets, "worker:9464")
		}
	}
	if !found {
		t.Errorf("no scrape job reaches the workers on :9464: %+v", cfg.ScrapeConfigs)
	}
}
