package wire

import (
	"strings"
	"testing"
)

func TestFileWorkflowIDStaysUnderTemporalsLimit(t *testing.T) {
	short := FileWorkflowID("p", "a/b.pdf")
	if short != "replicate/p/a/b.pdf" {
		t.Fatalf("short key: %q", short)
	}
	long := strings.Repeat("é", 511) + "x" // 1,023 bytes, a valid key
	other := strings.Repeat("é", 511) + "y"
	a, b := FileWorkflowID("policy", long), FileWorkflowID("policy", other)
	if len(a) > maxWorkflowIDBytes || strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		t.Fatalf("long key's ID is %d bytes, or not printable ASCII: %q", len(a), a)
	}
	if a == b {
		t.Fatal("two long keys with a common prefix share a workflow ID")
	}
	if a != FileWorkflowID("policy", long) {
		t.Fatal("the ID of a long key is not deterministic")
	}
	if !strings.HasPrefix(a, "replicate/policy/%C3%A9%C3%A9") {
		t.Fatalf("long key's ID does not start readably: %q", a[:40])
	}
}

func TestStagingKeyIsPerVersion(t *testing.T) {
	if StagingKey("k", "1:a") == StagingKey("k", "2:a") || !strings.HasPrefix(StagingKey("k", "1"), StagingPrefix) {
		t.Fatal("staging keys must differ per version and live under the staging prefix")
	}
}

func TestFileWorkflowIDIsPrintableASCII(t *testing.T) {
	for key, want := range map[string]string{
		"a/b.pdf":         "replicate/p/a/b.pdf",
		"café.pdf":        "replicate/p/caf%C3%A9.pdf",
		"100%.txt":        "replicate/p/100%25.txt",
		"line\nbreak.csv": "replicate/p/line%0Abreak.csv",
	} {
		if got := FileWorkflowID("p", key); got != want {
			t.Errorf("FileWorkflowID(%q) = %q, want %q", key, got, want)
		}
	}
	if FileWorkflowID("p", "caf%C3%A9.pdf") == FileWorkflowID("p", "café.pdf") {
		t.Error("a key that looks escaped and the key it looks like share an ID")
	}
}
