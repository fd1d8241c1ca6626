package store

import "testing"

func TestResumeStateMatches(t *testing.T) {
	const sha = "ab12000000000000000000000000000000000000000000000000000000000000"
	rs := &ResumeState{UploadID: "u", PartSize: 8, Key: "a/b", SHA256: sha}
	if !rs.Matches("a/b", sha, 8) {
		t.Fatal("a state matches the put it was recorded for")
	}
	if !rs.Matches("a/b", "AB12000000000000000000000000000000000000000000000000000000000000", 8) {
		t.Error("hex case must not matter")
	}
	for name, ok := range map[string]bool{
		"other key":       rs.Matches("a/c", sha, 8),
		"other bytes":     rs.Matches("a/b", "cd"+sha[2:], 8),
		"other part size": rs.Matches("a/b", sha, 16),
		"no upload":       (&ResumeState{PartSize: 8, Key: "a/b", SHA256: sha}).Matches("a/b", sha, 8),
		"no hash":         (&ResumeState{UploadID: "u", PartSize: 8, Key: "a/b"}).Matches("a/b", "", 8),
		"nil":             (*ResumeState)(nil).Matches("a/b", sha, 8),
	} {
		if ok {
			t.Errorf("%s: resumed an upload that belongs to another put", name)
		}
	}
}
