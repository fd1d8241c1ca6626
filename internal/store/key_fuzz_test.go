package store

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzValidateKey: whatever the input, ValidateKey never panics, and a key it accepts
// has every property the drivers rely on.
func FuzzValidateKey(f *testing.F) {
	for _, seed := range []string{"a.txt", "dir/sub/file", "", "/abs", "a//b", "a/./b", "../x", "caf\u00e9.pdf", "tab\there", "bad\xffutf8", strings.Repeat("x", MaxKeyBytes+1), ".replicator/staging/x"} {
		f.Add(seed, 0)
	}
	f.Fuzz(func(t *testing.T, key string, prefixLen int) {
		prefixLen = max(min(prefixLen, 2*MaxKeyBytes), 0)
		err := ValidateKey(key, prefixLen)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("refusal of %q says nothing", key)
			}
			return
		}
		if key == "" || !utf8.ValidString(key) || len(key)+prefixLen > MaxKeyBytes || strings.HasPrefix(key, "/") {
			t.Fatalf("accepted %q (prefix %d): empty, invalid UTF-8, too long or absolute", key, prefixLen)
		}
		for _, r := range key {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("accepted %q with control character %U", key, r)
			}
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q with segment %q", key, seg)
			}
		}
	})
}
