package compose

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// prometheusConfig is the part of Prometheus's configuration this deployment uses.
// It is decoded strictly, so a misspelt key fails instead of being ignored, as
// Prometheus itself would refuse it; a key this check does not know yet must be
// added here.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		ScrapeTimeout      string `yaml:"scrape_timeout"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName        string `yaml:"job_name"`
		ScrapeInterval string `yaml:"scrape_interval"`
		MetricsPath    string `yaml:"metrics_path"`
		Scheme         string `yaml:"scheme"`
		DNSSDConfigs   []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// CheckPrometheus returns every way the Prometheus service would not scrape every
// replica of the worker: its configuration file is not the one mounted, no job
// resolves the worker's name to all replicas (Compose's DNS gives one A record per
// replica; a static target reaches only one of them) on the worker's metrics port,
// or a rule file is not mounted.
func CheckPrometheus(p *types.Project, service, worker string, w Worker) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	s, ok := allServices(p)[service]
	if !ok {
		return []string{"no " + service + " service"}
	}
	configPath := flagValue(s.Command, "config.file")
	if configPath == "" {
		configPath = "/etc/prometheus/prometheus.yml" // the image's default
	}
	file, err := mountedFile(s, configPath)
	if err != nil {
		return []string{fmt.Sprintf("%s: its configuration %s: %v", service, configPath, err)}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return []string{err.Error()}
	}
	var cfg prometheusConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return []string{fmt.Sprintf("%s: %v", file, err)}
	}
	scraped := false
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" || sc.Scheme != "" && sc.Scheme != "http" {
			continue
		}
		for _, d := range sc.DNSSDConfigs {
			typ := strings.ToUpper(d.Type)
			if slices.Contains(d.Names, worker) && (typ == "A" || typ == "AAAA") && d.Port == w.MetricsPort {
				scraped = true
			}
		}
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, worker+":"+strconv.Itoa(w.MetricsPort)) {
				report("%s: job %s scrapes %s:%d as a static target, which reaches one replica per scrape; use dns_sd_configs type A", file, sc.JobName, worker, w.MetricsPort)
			}
		}
	}
	if !scraped {
		report("%s: no job scrapes every %s replica on :%d (dns_sd_configs names [%s], type A, port %d)", file, worker, w.MetricsPort, worker, w.MetricsPort)
	}
	for _, rf := range cfg.RuleFiles {
		if !path.IsAbs(rf) {
			rf = path.Join(path.Dir(configPath), rf)
		}
		if _, err := mountedFile(s, rf); err != nil {
			report("%s: rule file %s: %v", service, rf, err)
		}
	}
	return problems
}

// CheckGrafana returns every way the Grafana service would come up without the
// dashboard: no provisioned data source pointing at the Prometheus service, or no
// provisioned dashboard directory holding a mounted dashboard.
func CheckGrafana(p *types.Project, service, prometheus string) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	all := allServices(p)
	s, ok := all[service]
	if !ok {
		return []string{"no " + service + " service"}
	}
	const provisioning = "/etc/grafana/provisioning/"
	var datasource bool
	var dashboardDirs []string
	for _, v := range s.Volumes {
		target := path.Clean(v.Target)
		switch {
		case strings.HasPrefix(target, provisioning+"datasources/"):
			var f struct {
				Datasources []struct {
					Type string `yaml:"type"`
					URL  string `yaml:"url"`
				} `yaml:"datasources"`
			}
			if err := decodeYAMLFile(v.Source, &f); err != nil {
				report("%s: %v", service, err)
				continue
			}
			for _, d := range f.Datasources {
				if d.Type != "prometheus" {
					continue
				}
				var bad []string
				checkEndpoint(all, service+" data source", d.URL, func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) })
				if len(bad) > 0 {
					problems = append(problems, bad...)
				} else if strings.Contains(d.URL, "//"+prometheus+":") {
					datasource = true
				}
			}
		case strings.HasPrefix(target, provisioning+"dashboards/"):
			var f struct {
				Providers []struct {
					Options struct {
						Path string `yaml:"path"`
					} `yaml:"options"`
				} `yaml:"providers"`
			}
			if err := decodeYAMLFile(v.Source, &f); err != nil {
				report("%s: %v", service, err)
				continue
			}
			for _, pr := range f.Providers {
				dashboardDirs = append(dashboardDirs, path.Clean(pr.Options.Path))
			}
		}
	}
	if !datasource {
		report("%s: no provisioned Prometheus data source at the %s service", service, prometheus)
	}
	dashboards := 0
	for _, v := range s.Volumes {
		if !slices.Contains(dashboardDirs, path.Dir(path.Clean(v.Target))) {
			continue
		}
		b, err := os.ReadFile(v.Source)
		var d struct {
			Panels []json.RawMessage `json:"panels"`
		}
		if err == nil {
			err = json.Unmarshal(b, &d)
		}
		if err != nil || len(d.Panels) == 0 {
			report("%s: dashboard %s: not a dashboard (%v)", service, v.Source, err)
			continue
		}
		dashboards++
	}
	if dashboards == 0 {
		report("%s: no dashboard mounted in a provisioned directory %v", service, dashboardDirs)
	}
	return problems
}

// mountedFile returns the host file bind-mounted at target in the service.
func mountedFile(s types.ServiceConfig, target string) (string, error) {
	for _, v := range s.Volumes {
		if path.Clean(v.Target) != path.Clean(target) {
			continue
		}
		if v.Type != types.VolumeTypeBind {
			return "", fmt.Errorf("mounted from a %s, not a file of this repository", v.Type)
		}
		fi, err := os.Stat(v.Source)
		if err != nil {
			return "", err
		}
		if fi.IsDir() {
			return "", fmt.Errorf("%s is a directory", v.Source)
		}
		return v.Source, nil
	}
	return "", fmt.Errorf("not mounted")
}

func decodeYAMLFile(file string, v any) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}
