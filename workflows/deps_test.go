package workflows

import (
	"os/exec"
	"strings"
	"testing"
)

// Workflows decide on wire types only: a cloud SDK among their dependencies would
// mean a driver change can reach workflow code (and every worker's replay).
func TestWorkflowsImportNoCloudSDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/aws/", "github.com/Azure/", "cloud.google.com/", "google.golang.org/api",
		"github.com/cloudrepl/replicator/activities", "github.com/cloudrepl/replicator/internal/store"}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				bad = append(bad, pkg)
			}
		}
	}
	if len(bad) > 0 {
		t.Fatalf("workflows depend on %d forbidden packages, e.g. %v: import package wire instead", len(bad), bad[:min(len(bad), 5)])
	}
}
