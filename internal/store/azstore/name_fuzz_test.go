package azstore

import (
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
)

// FuzzAzureName: a name checkAzureName accepts is one Azure stores and lists back
// byte for byte: no backslash, no segment ending in '.', nothing its XML listings
// cannot carry. A refusal names the key.
func FuzzAzureName(f *testing.F) {
	for _, seed := range []string{"a/b.txt", `back\slash`, "trailing./x", "dots...", "\ufffe", "ok/.hidden", "a/b."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if store.ValidateKey(name, 0) != nil {
			return // refused before any driver rule
		}
		err := checkAzureName(name)
		if err != nil {
			if !strings.Contains(err.Error(), "rename") {
				t.Fatalf("refusal of %q does not say what to do: %v", name, err)
			}
			return
		}
		if strings.ContainsRune(name, '\\') || store.XMLUnsafeRune(name) >= 0 {
			t.Fatalf("accepted %q: Azure would change it", name)
		}
		for _, seg := range strings.Split(name, "/") {
			if strings.HasSuffix(seg, ".") {
				t.Fatalf("accepted %q: Azure strips the trailing dot of %q", name, seg)
			}
		}
	})
}
