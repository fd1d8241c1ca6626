package helm

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/wire"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
)

// scenarios are the values files of testdata, each a deployment users run.
var scenarios = []string{"testdata/eks.yaml", "testdata/gke.yaml", "testdata/aks.yaml"}

func TestChartLints(t *testing.T) {
	for _, values := range scenarios {
		if out, err := runHelm(t, "lint", "--strict", "./replicator", "--values", values); err != nil {
			t.Errorf("%s: %v\n%s", values, err, out)
		}
	}
}

// TestRenderedObjectsHoldTogether decodes every scenario's rendering strictly and
// checks what the objects promise each other and the worker.
func TestRenderedObjectsHoldTogether(t *testing.T) {
	for _, values := range scenarios {
		t.Run(filepath.Base(values), func(t *testing.T) {
			r := render(t, values)
			checkRendering(t, r)
		})
	}
}

func checkRendering(t *testing.T, r *rendering) {
	t.Helper()
	for _, want := range []string{"apps/v1/Deployment", "v1/ConfigMap", "v1/ServiceAccount", "v1/Service", "policy/v1/PodDisruptionBudget"} {
		if !slices.Contains(r.kinds, want) {
			t.Fatalf("no %s rendered (got %v)", want, r.kinds)
		}
	}
	d := r.deployment
	pod := d.Spec.Template
	podLabels := labels.Set(pod.Labels)
	if sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels); !sel.Matches(podLabels) {
		t.Errorf("the Deployment's selector %v does not select its own pods %v", sel, podLabels)
	}
	if sel := labels.SelectorFromSet(r.pdb.Spec.Selector.MatchLabels); !sel.Matches(podLabels) {
		t.Errorf("the disruption budget's selector %v does not select the workers %v", sel, podLabels)
	}
	if r.pdb.Spec.MaxUnavailable == nil || r.pdb.Spec.MaxUnavailable.IntValue() < 1 {
		t.Errorf("the disruption budget allows no disruption at all (maxUnavailable %v): drains would hang", r.pdb.Spec.MaxUnavailable)
	}
	if sel := labels.SelectorFromSet(r.service.Spec.Selector); !sel.Matches(podLabels) {
		t.Errorf("the Service's selector %v does not select the workers", sel)
	}
	if pod.Spec.ServiceAccountName != r.serviceAccount.Name {
		t.Errorf("pods run as %q, the chart creates %q", pod.Spec.ServiceAccountName, r.serviceAccount.Name)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want the worker alone", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	flags := parseArgs(t, c.Args)
	for name := range flags {
		if !workerFlags(t)[name] {
			t.Errorf("the container passes --%s, which the worker does not have", name)
		}
	}

	// Termination grace outlasts --stop-timeout, so a draining worker hands its
	// activities over before the kubelet's SIGKILL.
	stop, err := strconv.Atoi(strings.TrimSuffix(flags["stop-timeout"], "s"))
	if err != nil {
		t.Fatalf("--stop-timeout=%q is not whole seconds", flags["stop-timeout"])
	}
	if grace := pod.Spec.TerminationGracePeriodSeconds; grace == nil || *grace <= int64(stop) {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than --stop-timeout %ds", ptrString(grace), stop)
	}

	// Metrics bound to the pod's address (from the downward API), on the port the
	// container and the Service declare.
	host, port, ok := strings.Cut(flags["metrics-addr"], ":")
	if !ok || host != "$(POD_IP)" {
		t.Errorf("--metrics-addr=%q: want $(POD_IP):PORT", flags["metrics-addr"])
	}
	podIP := envVar(c, "POD_IP")
	if podIP == nil || podIP.ValueFrom == nil || podIP.ValueFrom.FieldRef == nil || podIP.ValueFrom.FieldRef.FieldPath != "status.podIP" {
		t.Errorf("POD_IP is not taken from status.podIP: %+v", podIP)
	}
	containerPort := map[string]string{}
	for _, p := range c.Ports {
		containerPort[p.Name] = strconv.Itoa(int(p.ContainerPort))
	}
	if containerPort["metrics"] != port {
		t.Errorf("metrics listen on %s, the container declares %s", port, containerPort["metrics"])
	}
	for _, p := range r.service.Spec.Ports {
		if _, ok := containerPort[p.TargetPort.String()]; !ok {
			t.Errorf("the Service's port %s targets %q, which the container does not declare", p.Name, p.TargetPort.String())
		}
	}
	for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if probe == nil {
			t.Fatal("the worker has no readiness or no liveness probe")
		}
		if probe.HTTPGet != nil && (probe.HTTPGet.Path != "/healthz" || probe.HTTPGet.Port.String() != "metrics") {
			t.Errorf("a probe asks %s on %s, want /healthz on metrics", probe.HTTPGet.Path, probe.HTTPGet.Port.String())
		}
		if probe.HTTPGet != nil && envVar(c, "REPLICATOR_METRICS_TOKEN") != nil {
			t.Error("an HTTP probe of /healthz while it requires a token would always fail")
		}
	}

	// Requests for the scheduler, and a Go memory limit below the container's.
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("the worker requests no CPU or memory: %v", c.Resources.Requests)
	}
	goLimit, err := config.ParseByteSize(flags["memory-limit"])
	if err != nil {
		t.Fatalf("--memory-limit=%q: %v", flags["memory-limit"], err)
	}
	if limit := c.Resources.Limits.Memory(); !limit.IsZero() && resource.NewQuantity(int64(goLimit), resource.BinarySI).Cmp(*limit) >= 0 {
		t.Errorf("--memory-limit %s is not below the container's limit %s", flags["memory-limit"], limit)
	}

	sc := pod.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("pods may run as root")
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the root filesystem is writable")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if mounts["/tmp"] == "" {
		t.Error("no writable /tmp under a read-only root (plans and manifests are spooled there)")
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for path, name := range mounts {
		if _, ok := volumes[name]; !ok {
			t.Errorf("%s mounts volume %q, which the pod does not have", path, name)
		}
	}

	// The config the pods read is valid for the replicator itself, mounted where
	// --config points, and its state is shared by every worker.
	cfgFile := flags["config"]
	if v := volumes[mounts[filepath.Dir(cfgFile)]]; v.ConfigMap == nil || v.ConfigMap.Name != r.configMap.Name {
		t.Errorf("--config=%s is not in the chart's ConfigMap", cfgFile)
	}
	cfg, err := config.Parse(strings.NewReader(r.configMap.Data[filepath.Base(cfgFile)]))
	if err != nil {
		t.Fatalf("the rendered replicator.yaml is refused by the replicator: %v", err)
	}
	if path, ok := strings.CutPrefix(cfg.State, "file://"); ok {
		v := volumes[mounts[path]]
		if v.PersistentVolumeClaim == nil && (d.Spec.Replicas == nil || *d.Spec.Replicas > 1) {
			t.Errorf("state %s is on each pod's own disk while several workers run", cfg.State)
		}
	}

	checkWorkloadIdentity(t, r)
	if r.scaledObject != nil {
		checkAutoscaling(t, r, cfg)
	} else if d.Spec.Replicas == nil {
		t.Error("no replica count and no autoscaler: the Deployment would run one worker")
	}
}

func checkWorkloadIdentity(t *testing.T, r *rendering) {
	t.Helper()
	a := r.serviceAccount.Annotations
	if arn := a["eks.amazonaws.com/role-arn"]; arn != "" && !strings.HasPrefix(arn, "arn:aws:iam::") {
		t.Errorf("IRSA role %q is not an IAM role ARN", arn)
	}
	if id := a["azure.workload.identity/client-id"]; id != "" {
		if r.deployment.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
			t.Error("an Azure workload identity without the pods' azure.workload.identity/use label: the webhook would not inject the token")
		}
	}
}

// checkAutoscaling holds the ScaledObject to KEDA's own validation and its
// temporal scaler's parameters, and its queues to the ones the workers poll.
func checkAutoscaling(t *testing.T, r *rendering, cfg *config.File) {
	t.Helper()
	so := r.scaledObject
	if so.Spec.ScaleTargetRef == nil || so.Spec.ScaleTargetRef.Name != r.deployment.Name || so.Spec.ScaleTargetRef.Kind != "Deployment" {
		t.Errorf("the ScaledObject scales %+v, not the worker Deployment %s", so.Spec.ScaleTargetRef, r.deployment.Name)
	}
	if r.deployment.Spec.Replicas != nil {
		t.Error("the Deployment sets replicas while KEDA owns them: every upgrade would reset the scale")
	}
	if err := kedav1alpha1.ValidateTriggers(so.Spec.Triggers); err != nil {
		t.Errorf("KEDA refuses the triggers: %v", err)
	}
	if err := kedav1alpha1.CheckReplicaCountBoundsAreValid(so); err != nil {
		t.Errorf("KEDA refuses the replica bounds: %v", err)
	}
	polled := map[string]bool{wire.DefaultTaskQueue: true}
	for i := range cfg.Policies {
		for j := range cfg.Policies[i].Destinations {
			polled[cfg.Policies[i].Destinations[j].TaskQueue(wire.DefaultTaskQueue)] = true
		}
	}
	metadataNames, authNames := temporalScalerParameters(t)
	for _, trig := range so.Spec.Triggers {
		if trig.Type != "temporal" {
			t.Errorf("trigger %q is of type %s, want temporal", trig.Name, trig.Type)
			continue
		}
		for k := range trig.Metadata {
			if !metadataNames[k] {
				t.Errorf("trigger %q sets %q, which KEDA's temporal scaler does not read (it reads %v)", trig.Name, k, slices.Sorted(maps.Keys(metadataNames)))
			}
		}
		if q := trig.Metadata["taskQueue"]; !polled[q] {
			t.Errorf("KEDA watches task queue %q, which no worker polls with this config (they poll %v)", q, slices.Sorted(maps.Keys(polled)))
		}
		if trig.Metadata["endpoint"] != envVar(r.deployment.Spec.Template.Spec.Containers[0], "TEMPORAL_ADDRESS").Value {
			t.Errorf("KEDA asks %s, the workers connect to another Temporal", trig.Metadata["endpoint"])
		}
		if trig.AuthenticationRef != nil {
			if r.triggerAuth == nil || r.triggerAuth.Name != trig.AuthenticationRef.Name {
				t.Errorf("trigger %q names TriggerAuthentication %q, which is not rendered", trig.Name, trig.AuthenticationRef.Name)
			}
		}
	}
	if r.triggerAuth != nil {
		for _, ref := range r.triggerAuth.Spec.SecretTargetRef {
			if !authNames[ref.Parameter] {
				t.Errorf("TriggerAuthentication passes %q, which KEDA's temporal scaler does not take (it takes %v)", ref.Parameter, slices.Sorted(maps.Keys(authNames)))
			}
		}
	}
}

// temporalScalerParameters reads the trigger metadata and authentication parameter
// names that KEDA's temporal scaler declares, from the source of the KEDA module
// this test decodes with, so that a renamed or unknown parameter fails here
// instead of being ignored by KEDA at run time.
func temporalScalerParameters(t *testing.T) (metadata, auth map[string]bool) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/kedacore/keda/v2").Output()
	if err != nil {
		t.Fatalf("find the KEDA module: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "pkg", "scalers", "temporal_scaler.go"))
	if err != nil {
		t.Fatalf("read KEDA's temporal scaler: %v", err)
	}
	metadata, auth = map[string]bool{}, map[string]bool{}
	tag := regexp.MustCompile(`keda:"name=([A-Za-z]+),\s*order=([a-zA-Z;]+)`)
	for _, m := range tag.FindAllStringSubmatch(string(src), -1) {
		for order := range strings.SplitSeq(m[2], ";") {
			switch order {
			case "triggerMetadata":
				metadata[m[1]] = true
			case "authParams":
				auth[m[1]] = true
			}
		}
	}
	if !metadata["taskQueue"] || !auth["apiKey"] {
		t.Fatalf("found no temporal scaler parameters in KEDA's source (metadata %v, auth %v): has its declaration changed?", metadata, auth)
	}
	return metadata, auth
}

// parseArgs reads --name=value arguments (the chart's form) into a map.
func parseArgs(t *testing.T, args []string) map[string]string {
	t.Helper()
	flags := map[string]string{}
	for _, a := range args {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") {
			t.Errorf("argument %q is not a --flag", a)
		}
		flags[name] = value
	}
	return flags
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

var (
	workerFlagsOnce sync.Once
	workerFlagSet   map[string]bool
	workerBinary    string
)

// workerFlags are the flags the worker's -h lists, from a build of this checkout.
func workerFlags(t *testing.T) map[string]bool {
	t.Helper()
	workerFlagsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "helm-worker-")
		if err != nil {
			t.Fatal(err)
		}
		workerBinary = filepath.Join(dir, "worker")
		build := exec.Command("go", "build", "-o", workerBinary, "./worker")
		build.Dir = filepath.Join(moduleDir(), "..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the worker: %v\n%s", err, out)
		}
		help, _ := exec.Command(workerBinary, "-h").CombinedOutput()
		workerFlagSet = map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(string(help)))
		flagLine := regexp.MustCompile(`^\s+-([a-z][a-z0-9-]*)`)
		for sc.Scan() {
			if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
				workerFlagSet[m[1]] = true
			}
		}
	})
	if !workerFlagSet["stop-timeout"] || !workerFlagSet["metrics-addr"] {
		t.Fatalf("could not read the worker's flags from its -h (got %v)", workerFlagSet)
	}
	return workerFlagSet
}

// TestChartRefusesBadValues: each mistake is refused by helm with a message that
// names the setting and how to fix it, instead of a rendering that cannot work.
func TestChartRefusesBadValues(t *testing.T) {
	const bucketConfig = "config=state: s3://b/state"
	cases := []struct {
		name string
		sets []string
		want string
	}{
		{"no Temporal address", []string{bucketConfig}, "temporal.address: set the Temporal frontend"},
		{"no config", []string{"temporal.address=t:7233"}, "config: give the replicator.yaml"},
		{"both configs", []string{"temporal.address=t:7233", bucketConfig, "existingConfigMap=mine"}, "keep one"},
		{"per-pod state with two workers", []string{"temporal.address=t:7233", "config=state: file:///var/lib/replicator"}, "ReadWriteMany"},
		{"per-pod state with autoscaling", []string{"temporal.address=t:7233", "config=state: file:///var/lib/replicator", "replicaCount=1", "autoscaling.enabled=true"}, "ReadWriteMany"},
		{"config not YAML", []string{"temporal.address=t:7233", "config=state: [unclosed"}, "config: not valid YAML"},
		{"misspelt key", []string{"temporal.address=t:7233", bucketConfig, "metrics.prot=9000"}, "additional properties 'prot' not allowed"},
		{"TLS without its secret", []string{"temporal.address=t:7233", bucketConfig, "temporal.tls.enabled=true"}, "temporal.tls.secretName"},
		{"no grace beyond the stop timeout", []string{"temporal.address=t:7233", bucketConfig, "terminationGraceExtraSeconds=0"}, "terminationGraceExtraSeconds"},
		{"an IAM user instead of a role", []string{"temporal.address=t:7233", bucketConfig, "workloadIdentity.aws.roleArn=arn:aws:iam::123456789012:user/me"}, "roleArn"},
		{"replica bounds upside down", []string{"temporal.address=t:7233", bucketConfig, "autoscaling.enabled=true", "autoscaling.minReplicaCount=5", "autoscaling.maxReplicaCount=2"}, "minReplicaCount is larger"},
		{"Go memory limit in Kubernetes units", []string{"temporal.address=t:7233", bucketConfig, "goMemoryLimit=400Mi"}, "goMemoryLimit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"template", "repl", "./replicator"}
			for _, s := range c.sets {
				args = append(args, "--set-string", s)
			}
			// Numbers and booleans must stay typed for the schema.
			for i, a := range args {
				if i > 0 && args[i-1] == "--set-string" && regexp.MustCompile(`=(\d+|true|false)$`).MatchString(a) {
					args[i-1] = "--set"
				}
			}
			out, err := runHelm(t, args...)
			if err == nil {
				t.Fatalf("helm rendered it:\n%s", out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("the refusal does not say %q:\n%v", c.want, err)
			}
		})
	}
}

// TestStrictDecodingRefusesUnknownFields shows the decoder of these tests would
// catch a misplaced field, which the API server would drop without a word.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	bad := `apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  replica: 2
  selector: {matchLabels: {a: b}}
  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: w, image: i}]}}
`
	if _, err := decodeAll(bad); err == nil || !strings.Contains(err.Error(), `unknown field "replica"`) {
		t.Errorf("a Deployment with spec.replica decoded: %v", err)
	}
	if _, err := decodeAll("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"); err == nil {
		t.Error("an unexpected kind decoded")
	}
	so := "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: s}\nspec:\n  scaleTargetRef: {name: w}\n  triggers: [{type: temporal, metdata: {}}]\n"
	if _, err := decodeAll(so); err == nil {
		t.Error("a ScaledObject trigger with a misspelt metadata field decoded")
	}
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
