package compose

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// dir is this package's directory, deploy/compose; root the replicator's repository.
func dir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Dir(file)
}

func root(t *testing.T) string { return filepath.Join(dir(t), "..", "..") }

func dockerfilePath(t *testing.T) string {
	return filepath.Join(root(t), "deploy", "docker", "Dockerfile")
}

// images are the targets the Dockerfile must build.
var images = []ImageTarget{{Name: "worker", Binary: "worker"}, {Name: "starter", Binary: "starter"}}

// workflowAttributes reads the search attributes the workflows set from the
// replicator's source (temporal.NewSearchAttributeKey<Type>("Name") calls), so the
// Compose job is compared with the code, not with a second list kept by hand.
func workflowAttributes(t *testing.T) map[string]string {
	t.Helper()
	types := map[string]string{"Keyword": "Keyword", "Int64": "Int", "Bool": "Bool", "Float64": "Double", "Time": "Datetime", "KeywordList": "KeywordList", "String": "Text"}
	out := map[string]string{}
	err := filepath.WalkDir(root(t), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root(t) && (strings.HasPrefix(d.Name(), ".") || d.Name() == "deploy" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			typ, ok := strings.CutPrefix(sel.Sel.Name, "NewSearchAttributeKey")
			lit, isLit := call.Args[0].(*ast.BasicLit)
			if !ok || !isLit || types[typ] == "" {
				return true
			}
			name, err := strconv.Unquote(lit.Value)
			if err == nil {
				out[name] = types[typ]
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("found no search attribute in the replicator's source")
	}
	return out
}

func expect(t *testing.T, df *Dockerfile) Expect {
	return Expect{
		Worker: "worker", Temporal: "temporal", SearchAttributes: "search-attributes",
		Replicas: 2, Attributes: workflowAttributes(t),
		Dockerfile: df, DockerfilePath: dockerfilePath(t),
	}
}

// TestDockerfile: deploy/docker/Dockerfile, as BuildKit parses it, builds small,
// static, non-root images of the worker and the starter.
func TestDockerfile(t *testing.T) {
	df, err := ParseDockerfile(dockerfilePath(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range CheckDockerfile(df, images) {
		t.Error(p)
	}
	env, err := df.StageEnv("worker")
	if err != nil {
		t.Fatal(err)
	}
	if env["REPLICATOR_METRICS_ADDR"] == "" {
		t.Error("the worker image does not set REPLICATOR_METRICS_ADDR: run without flags, its metrics would listen on 127.0.0.1 inside the container")
	}
}

// TestComposeDeployment loads compose.yaml with compose-go and checks the workers,
// their policy file, Prometheus and Grafana against each other.
func TestComposeDeployment(t *testing.T) {
	df, err := ParseDockerfile(dockerfilePath(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadProject(context.Background(), filepath.Join(dir(t), "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w, problems := CheckProject(p, expect(t, df))
	for _, pr := range problems {
		t.Error(pr)
	}
	if w.ConfigPath == "" {
		t.Fatal("no policy file found for the workers")
	}
	if want := filepath.Join(dir(t), "replicator.yaml"); w.ConfigPath != want {
		t.Errorf("the workers read %s; want the sample %s", w.ConfigPath, want)
	}
	for _, pr := range CheckPolicies(p, w, w.ConfigPath) {
		t.Error(pr)
	}
	for _, pr := range CheckPrometheus(p, "prometheus", "worker", w) {
		t.Error(pr)
	}
	for _, pr := range CheckGrafana(p, "grafana", "prometheus") {
		t.Error(pr)
	}
	if s, ok := allServices(p)["starter"]; !ok || len(s.Profiles) == 0 {
		t.Error("no starter service in a profile, for `docker compose run --rm starter …` (without a profile `up` would start it)")
	}
}

// TestChecksReportMistakes runs every check on broken copies of the files under
// testdata/broken and expects each planted mistake to be reported, so a check that
// stopped looking would fail here.
func TestChecksReportMistakes(t *testing.T) {
	broken := filepath.Join(dir(t), "testdata", "broken")
	df, err := ParseDockerfile(filepath.Join(broken, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, "Dockerfile", CheckDockerfile(df, images),
		"worker: the image is the stage that runs go build",
		"stage worker: go build with CGO_ENABLED=\"\"",
		"without -trimpath",
		"does not stamp "+VersionVar, // ARG VERSION is global but not declared again in the stage
		"worker: FROM golang:1.26.8",
		"starter: FROM alpine:3.22",
		"ENTRYPOINT in shell form",
		"worker: no USER",
		"starter: USER \"root\" is not a numeric uid",
		"starter: no /etc/ssl/certs/ca-certificates.crt",
		"starter: no /tmp",
	)

	real, err := ParseDockerfile(dockerfilePath(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadProject(context.Background(), filepath.Join(broken, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w, problems := CheckProject(p, expect(t, real))
	wantAll(t, "compose.yaml", problems,
		`temporal: image "temporalio/auto-setup" has no tag`,
		`search-attributes: image "temporalio/admin-tools:latest" is not pinned`,
		"temporal: port 7233 is published on \"every address\"",
		"prometheus: port 9090 is published on \"every address\"",
		"worker: deploy.replicas is 3; want 2",
		"worker: does not wait for temporal to be healthy",
		"worker: does not wait for search-attributes to complete successfully",
		"search-attributes: registers ReplicationKey as \"Text\"",
		"search-attributes: registers ReplicationBytes as \"\"",
		"search-attributes: registers Extra, which no workflow sets",
		"worker: no TEMPORAL_ADDRESS",
		"worker: metrics listen on 127.0.0.1:9464",
		"stop_grace_period 30s does not outlast --stop-timeout 1m0s",
		"the policy file",
		"--config /etc/replicator/replicator.yaml and REPLICATOR_CONFIG /etc/replicator.yaml differ",
	)
	w.MetricsPort = 9464
	wantAll(t, "replicator.yaml", CheckPolicies(p, w, filepath.Join(broken, "replicator.yaml")),
		"state file:///var/lib/replicator is on a volume mount of its own in each replica",
		"source file:///data/elsewhere is mounted in no worker volume",
		"destination s3: endpoint http://minio:9999: service minio declares no port 9999",
		"AWS_ACCESS_KEY_ID \"replicator\" is not minio's MINIO_ROOT_USER",
		"AWS_SECRET_ACCESS_KEY is not minio's MINIO_ROOT_PASSWORD",
		"no job the workers wait for creates bucket \"nobucket\"",
		"destination gcs: neither an endpoint nor STORAGE_EMULATOR_HOST",
		"destination azure: the workers have no MISSING_ENV",
		"destination azure: endpoint http://azure:10000/devstoreaccount1 names no service",
	)
	wantAll(t, "prometheus.yml", CheckPrometheus(p, "prometheus", "worker", w),
		"scrapes worker:9464 as a static target",
		"no job scrapes every worker replica on :9464",
		"rule file /etc/prometheus/alerts.yaml: not mounted",
	)
	wantAll(t, "grafana", CheckGrafana(p, "grafana", "prometheus"),
		"no provisioned Prometheus data source",
		"no dashboard mounted",
	)

	// A misspelt key is refused, as Prometheus refuses it, instead of leaving the
	// workers unscraped without a word.
	p.Services["prometheus"].Volumes[0].Source = filepath.Join(broken, "misspelt-prometheus.yml")
	wantAll(t, "misspelt prometheus.yml", CheckPrometheus(p, "prometheus", "worker", w), "field scrape_config not found")
}

// wantAll fails unless every fragment appears in one of the problems reported.
func wantAll(t *testing.T, what string, problems []string, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		found := false
		for _, p := range problems {
			found = found || strings.Contains(p, f)
		}
		if !found {
			t.Errorf("%s: no problem reported containing %q; reported:\n  %s", what, f, strings.Join(problems, "\n  "))
		}
	}
}

// TestMain refuses to run from a copy of the directory without the repository
// around it: every check reads files beside it.
func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	if _, err := os.Stat(filepath.Join(filepath.Dir(file), "..", "..", "go.mod")); err != nil {
		println("deploy/compose: the replicator's repository is not two levels up:", err.Error())
		os.Exit(1)
	}
	os.Exit(m.Run())
}
