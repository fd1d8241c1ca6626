package helm

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRenderedWorkerRuns starts the worker as the rendered pod would (its args and
// env, the downward API's POD_IP as 127.0.0.1, the ConfigMap where --config
// points), against the test's Temporal dev server: it must serve /healthz and
// /metrics on the pod address, replicate a file, and exit cleanly on SIGTERM
// within the pod's termination grace.
func TestRenderedWorkerRuns(t *testing.T) {
	if os.Getenv("TEMPORAL_ADDRESS") == "" {
		t.Skip("TEMPORAL_ADDRESS is unset: run through make test, which starts a Temporal dev server")
	}
	dir := t.TempDir()
	for _, d := range []string{"state", "src", "dst", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "invoice.pdf"), []byte("rendered by helm"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	policy := fmt.Sprintf("helm-%d", time.Now().UnixNano())
	values := fmt.Sprintf(`temporal:
  address: %q
  namespace: %q
replicaCount: 1
podDisruptionBudget: {enabled: false}
metrics: {port: %d}
stopTimeoutSeconds: 5
config: |
  state: file://%[4]s/state
  policies:
    - name: %[5]s
      source: file://%[4]s/src
      destinations: [{name: copy, url: "file://%[4]s/dst"}]
`, os.Getenv("TEMPORAL_ADDRESS"), envOr("TEMPORAL_NAMESPACE", "default"), port, dir, policy)
	valuesFile := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	r := render(t, valuesFile)
	c := r.deployment.Spec.Template.Spec.Containers[0]
	cfgFile := parseArgs(t, c.Args)["config"]
	localConfig := filepath.Join(dir, "config", filepath.Base(cfgFile))
	if err := os.WriteFile(localConfig, []byte(r.configMap.Data[filepath.Base(cfgFile)]), 0o644); err != nil {
		t.Fatal(err)
	}

	// The kubelet's part: env from the downward API and literals, then $(VAR) in args.
	env := map[string]string{"POD_IP": "127.0.0.1"}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.Name != "POD_IP":
			t.Fatalf("env %s comes from %+v, which this scenario should not need", e.Name, e.ValueFrom)
		}
	}
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	var args []string
	for _, a := range c.Args {
		a = ref.ReplaceAllStringFunc(a, func(m string) string { return env[ref.FindStringSubmatch(m)[1]] })
		args = append(args, strings.Replace(a, cfgFile, localConfig, 1))
	}
	workerFlags(t) // builds the worker
	worker := exec.Command(workerBinary, args...)
	worker.Env = os.Environ()
	for k, v := range env {
		worker.Env = append(worker.Env, k+"="+v)
	}
	logs, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	worker.Stdout, worker.Stderr = logs, logs
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- worker.Wait() }()
	t.Cleanup(func() {
		_ = worker.Process.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("worker log:\n%s", out)
		}
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not answer /healthz on %s within a minute: %v", base, err)
		}
		select {
		case err := <-exited:
			t.Fatalf("the worker exited: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}

	starter := filepath.Join(filepath.Dir(workerBinary), "starter")
	build := exec.Command("go", "build", "-o", starter, "./starter")
	build.Dir = filepath.Join(moduleDir(), "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the starter: %v\n%s", err, out)
	}
	run := exec.Command(starter, "--config", localConfig, "replicate", "--policy", policy, "--wait", "invoice.pdf")
	run.Env = worker.Env
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("starter replicate: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "dst", "invoice.pdf"))
	if err != nil || string(got) != "rendered by helm" {
		t.Fatalf("the replica holds %q (%v)", got, err)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `replicator_objects_total{`) {
		t.Errorf("/metrics on the pod address has no replicator_objects_total:\n%.2000s", body)
	}

	// SIGTERM, as the kubelet sends it: the worker must be gone before the grace
	// period would end in SIGKILL.
	grace := time.Duration(*r.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if err := worker.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the worker ended with %v after SIGTERM, want a clean exit", err)
		}
	case <-time.After(grace):
		t.Errorf("the worker still ran %s after SIGTERM: the kubelet would SIGKILL it", grace)
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
