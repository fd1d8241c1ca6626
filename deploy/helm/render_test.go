package helm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// moduleDir is this module's folder, where the chart lives under replicator/.
func moduleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// helmBinary is the helm that install.sh built, or a skip when the tools are not
// installed (plain go test outside make test).
func helmBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("REPLICATOR_TOOLS_BIN")
	if bin == "" {
		t.Skip("REPLICATOR_TOOLS_BIN is unset: run through make test, which installs helm")
	}
	helm := filepath.Join(bin, "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("helm is missing from %s: bash deploy/local/install.sh helm", bin)
	}
	return helm
}

// runHelm runs helm in the module folder and returns its standard output, or its
// error with what it printed.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Dir = moduleDir()
	// helm keeps caches and its config under HOME-derived folders; keep them out of
	// the user's.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// rendering is what one `helm template` produced, decoded.
type rendering struct {
	deployment     *appsv1.Deployment
	configMap      *corev1.ConfigMap
	serviceAccount *corev1.ServiceAccount
	service        *corev1.Service
	pdb            *policyv1.PodDisruptionBudget
	scaledObject   *kedav1alpha1.ScaledObject
	triggerAuth    *kedav1alpha1.TriggerAuthentication
	kinds          []string
}

// render runs helm template on the chart with a values file (relative to this
// module) and --set pairs, and decodes every object strictly.
func render(t *testing.T, valuesFile string, sets ...string) *rendering {
	t.Helper()
	args := []string{"template", "repl", "./replicator", "--namespace", "replication"}
	if valuesFile != "" {
		args = append(args, "--values", valuesFile)
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := runHelm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeAll(out)
	if err != nil {
		t.Fatalf("%s: %v", valuesFile, err)
	}
	return r
}

// decodeAll splits a rendering into its documents and decodes each into the type
// its apiVersion and kind name, refusing unknown fields, unknown kinds and
// duplicates.
func decodeAll(manifest string) (*rendering, error) {
	r := &rendering{}
	for _, doc := range strings.Split(manifest, "\n---") {
		body, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("not YAML: %w\n%s", err, doc)
		}
		if string(body) == "null" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := json.Unmarshal(body, &head); err != nil {
			return nil, fmt.Errorf("read apiVersion and kind: %w", err)
		}
		kind := head.APIVersion + "/" + head.Kind
		var into any
		switch kind {
		case "apps/v1/Deployment":
			r.deployment = set(r.deployment, &into)
		case "v1/ConfigMap":
			r.configMap = set(r.configMap, &into)
		case "v1/ServiceAccount":
			r.serviceAccount = set(r.serviceAccount, &into)
		case "v1/Service":
			r.service = set(r.service, &into)
		case "policy/v1/PodDisruptionBudget":
			r.pdb = set(r.pdb, &into)
		case "keda.sh/v1alpha1/ScaledObject":
			r.scaledObject = set(r.scaledObject, &into)
		case "keda.sh/v1alpha1/TriggerAuthentication":
			r.triggerAuth = set(r.triggerAuth, &into)
		default:
			return nil, fmt.Errorf("the chart renders %s, which this test does not know: add its type", kind)
		}
		if into == nil {
			return nil, fmt.Errorf("the chart renders %s twice", kind)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			return nil, fmt.Errorf("decode %s strictly: %w\n%s", kind, err, doc)
		}
		r.kinds = append(r.kinds, kind)
	}
	return r, nil
}

// set allocates the object of a kind the first time it is seen and points into at
// it; a second one leaves into nil, which decodeAll reports.
func set[T any](existing *T, into *any) *T {
	if existing != nil {
		*into = nil
		return existing
	}
	v := new(T)
	*into = v
	return v
}
