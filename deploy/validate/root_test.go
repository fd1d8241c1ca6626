package validate

import (
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot is the replicator's repository, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
