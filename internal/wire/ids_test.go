package wire

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFileWorkflowIDStaysUnderTemporalsLimit(t *testing.T) {
	short := FileWorkflowID("p", "a/b.pdf")
	if short != "replicate/p/a/b.pdf" {
		t.Fatalf("short key: %q", short)
	}
	long := strings.Repeat("é", 511) + "x" // 1,023 bytes, a valid key
	other := strings.Repeat("é", 511) + "y"
	a, b := FileWorkflowID("policy", long), FileWorkflowID("policy", other)
	if len(a) > maxWorkflowIDBytes || !utf8.ValidString(a) {
		t.Fatalf("long key's ID is %d bytes (valid UTF-8: %v)", len(a), utf8.ValidString(a))
	}
	if a == b {
		t.Fatal("two long keys with a common prefix share a workflow ID")
	}
	if a != FileWorkflowID("policy", long) {
		t.Fatal("the ID of a long key is not deterministic")
	}
	if !strings.HasPrefix(a, "replicate/policy/éé") {
		t.Fatalf("long key's ID does not start readably: %q", a[:40])
	}
}

func TestStagingKeyIsPerVersion(t *testing.T) {
	if StagingKey("k", "1:a") == StagingKey("k", "2:a") || !strings.HasPrefix(StagingKey("k", "1"), StagingPrefix) {
		t.Fatal("staging keys must differ per version and live under the staging prefix")
	}
}
