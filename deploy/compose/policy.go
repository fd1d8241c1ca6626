package compose

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// policyFile is the part of replicator.yaml that names places: the state location,
// the sources and the destinations. The replicator's own parser (starter policy
// validate) checks the rest.
type policyFile struct {
	State    string `yaml:"state"`
	Policies []struct {
		Name         string `yaml:"name"`
		Source       string `yaml:"source"`
		Destinations []struct {
			Name        string            `yaml:"name"`
			URL         string            `yaml:"url"`
			Credentials map[string]string `yaml:"credentials"`
		} `yaml:"destinations"`
	} `yaml:"policies"`
}

// CheckPolicies returns every place the policy file names that the workers of the
// project could not reach: a state location not shared by every replica, a source
// outside any mount, a destination endpoint that is no service of the project or
// does not listen there, a bucket or container that no job the workers wait for
// creates, and credentials the workers' environment does not hold.
func CheckPolicies(p *types.Project, w Worker, file string) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	b, err := os.ReadFile(file)
	if err != nil {
		return []string{err.Error()}
	}
	var cfg policyFile
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return []string{fmt.Sprintf("%s: %v", file, err)}
	}
	all := allServices(p)

	// The state location holds leases, membership records and dead letters: every
	// replica must see the same one, so a named volume or a bind mount, never an
	// anonymous volume (one per container) or the container's own filesystem.
	if st, ok := strings.CutPrefix(cfg.State, "file://"); ok {
		switch m, ok := mountOf(w.Volumes, st); {
		case !ok:
			report("state %s is in each container's own filesystem: the replicas would not share leases and dead letters", cfg.State)
		case m.Type == types.VolumeTypeVolume && m.Source == "", m.Type == types.VolumeTypeTmpfs:
			report("state %s is on a %s mount of its own in each replica; use a named volume", cfg.State, m.Type)
		}
	}
	for _, pol := range cfg.Policies {
		if src, ok := strings.CutPrefix(pol.Source, "file://"); ok {
			if _, ok := mountOf(w.Volumes, src); !ok {
				report("policy %s: source %s is mounted in no worker volume", pol.Name, pol.Source)
			}
		}
		for _, d := range pol.Destinations {
			where := fmt.Sprintf("policy %s, destination %s", pol.Name, d.Name)
			u, err := url.Parse(d.URL)
			if err != nil {
				report("%s: %v", where, err)
				continue
			}
			bucket := u.Host
			endpoint := u.Query().Get("endpoint")
			switch u.Scheme {
			case "s3":
			case "gs":
				endpoint = w.Env["STORAGE_EMULATOR_HOST"]
				if endpoint == "" && u.Query().Get("endpoint") == "" {
					report("%s: neither an endpoint nor STORAGE_EMULATOR_HOST: it would go to Google", where)
				}
			case "azblob":
				// azblob://account/container/prefix
				bucket, _, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
				env := d.Credentials["azure_connection_string_env"]
				if env == "" {
					report("%s: no azure_connection_string_env credentials", where)
				} else if cs, ok := w.Env[env]; !ok {
					report("%s: the workers have no %s", where, env)
				} else if ep := connectionStringValue(cs, "BlobEndpoint"); ep != "" {
					checkEndpoint(all, where+" (BlobEndpoint of "+env+")", ep, report)
				}
			default:
				continue
			}
			var service string
			if endpoint == "" {
				report("%s: no endpoint: it would go to the cloud, not to the emulator", where)
			} else {
				service = checkEndpoint(all, where, endpoint, report)
			}
			if u.Scheme == "s3" {
				checkS3Credentials(all, w, where, endpoint, report)
			}
			if s, ok := all[service]; ok && !slices.ContainsFunc(sortedKeys(w.Jobs), func(j string) bool { return createsBucket(w.Jobs[j], bucket, s) }) {
				report("%s: no job the workers wait for creates bucket %q on %s", where, bucket, service)
			}
		}
	}
	return problems
}

// createsBucket tells whether a one-shot job creates bucket on the emulator service:
// its command names the bucket, and it talks to the service (its command or
// environment names it) or writes into a volume the service serves from.
func createsBucket(job types.ServiceConfig, bucket string, service types.ServiceConfig) bool {
	text := strings.Join(append(slices.Clone(job.Entrypoint), job.Command...), " ")
	word := regexp.MustCompile(`(^|[^\w.-])` + regexp.QuoteMeta(bucket) + `($|[^\w.-])`)
	if !word.MatchString(text) {
		return false
	}
	host := regexp.MustCompile(`(^|[^\w.-])` + regexp.QuoteMeta(service.Name) + `(:|/|$)`)
	if host.MatchString(text) {
		return true
	}
	for _, v := range job.Environment {
		if v != nil && host.MatchString(*v) {
			return true
		}
	}
	for _, jv := range job.Volumes {
		for _, sv := range service.Volumes {
			if jv.Type == types.VolumeTypeVolume && jv.Source != "" && jv.Source == sv.Source {
				return true
			}
		}
	}
	return false
}

// checkEndpoint reports an endpoint (a URL or host:port) that is no service of the
// project listening on that port, and returns the service's name.
func checkEndpoint(all types.Services, where, endpoint string, report func(string, ...any)) string {
	hostport := endpoint
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		hostport = u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			hostport = net.JoinHostPort(u.Hostname(), port)
		}
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		report("%s: endpoint %q: %v", where, endpoint, err)
		return ""
	}
	s, ok := all[host]
	if !ok {
		report("%s: endpoint %s names no service of the project", where, endpoint)
		return ""
	}
	if !listens(s, port) {
		report("%s: endpoint %s: service %s declares no port %s", where, endpoint, host, port)
	}
	return host
}

// checkS3Credentials compares the workers' AWS keys with the MinIO service's root
// credentials, when the endpoint is a MinIO service of the project.
func checkS3Credentials(all types.Services, w Worker, where, endpoint string, report func(string, ...any)) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return
	}
	s, ok := all[u.Hostname()]
	if !ok || s.Environment["MINIO_ROOT_USER"] == nil {
		return
	}
	if w.Env["AWS_ACCESS_KEY_ID"] != *s.Environment["MINIO_ROOT_USER"] {
		report("%s: AWS_ACCESS_KEY_ID %q is not %s's MINIO_ROOT_USER %q", where, w.Env["AWS_ACCESS_KEY_ID"], s.Name, *s.Environment["MINIO_ROOT_USER"])
	}
	if pw := s.Environment["MINIO_ROOT_PASSWORD"]; pw == nil || w.Env["AWS_SECRET_ACCESS_KEY"] != *pw {
		report("%s: AWS_SECRET_ACCESS_KEY is not %s's MINIO_ROOT_PASSWORD", where, s.Name)
	}
}

// mountOf returns the mount that holds the container path dir.
func mountOf(volumes map[string]types.ServiceVolumeConfig, dir string) (types.ServiceVolumeConfig, bool) {
	for p := path.Clean(dir); ; p = path.Dir(p) {
		if m, ok := volumes[p]; ok {
			return m, true
		}
		if p == "/" || p == "." {
			return types.ServiceVolumeConfig{}, false
		}
	}
}

func connectionStringValue(cs, key string) string {
	for _, part := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}
