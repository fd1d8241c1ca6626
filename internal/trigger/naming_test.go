package trigger

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/codec"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/wire"
)

func privateConfig(t *testing.T) *config.File {
	t.Helper()
	cfg, err := config.Parse(strings.NewReader(`state: file:///tmp/state
policies:
  - name: hr
    source: file:///srv/hr
    destinations: [{name: copy, url: "file:///srv/copy"}]
    private_keys: true
  - name: images
    source: file:///srv/images
    destinations: [{name: copy, url: "file:///srv/copy-images"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func codecKeys(t *testing.T) string {
	var k [32]byte
	_, _ = rand.Read(k[:])
	return "k1=" + base64.StdEncoding.EncodeToString(k[:])
}

func TestNamingRefusesWhatWouldLeaveKeysReadable(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef-secret"
	cases := []struct {
		name     string
		env      map[string]string
		wantErr  string
		wantNone bool
	}{
		{"no secret", map[string]string{codec.KeysEnv: codecKeys(t)}, "set REPLICATOR_ID_KEY", false},
		{"short secret", map[string]string{IDKeyEnv: "too-short", codec.KeysEnv: codecKeys(t)}, "is 9 bytes", false},
		{"no codec", map[string]string{IDKeyEnv: secret}, "the payload codec is off", false},
		{"secret twice", map[string]string{IDKeyEnv: secret, IDKeyFileEnv: "/nonexistent", codec.KeysEnv: codecKeys(t)}, "not both", false},
		{"complete", map[string]string{IDKeyEnv: secret, codec.KeysEnv: codecKeys(t)}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{IDKeyEnv, IDKeyFileEnv, codec.KeysEnv, codec.KeysFileEnv} {
				t.Setenv(k, c.env[k])
			}
			n, err := NewNaming(privateConfig(t))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "policy hr has private_keys") {
					t.Fatalf("got %v; want an error naming policy hr and saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !n.Private("hr") || n.Private("images") {
				t.Errorf("private: hr %v, images %v; want only hr", n.Private("hr"), n.Private("images"))
			}
		})
	}
}

func TestPrivateWorkflowIDsHideTheKey(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "id-key")
	if err := os.WriteFile(secretFile, []byte("a-secret-of-more-than-thirty-two-bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(IDKeyEnv, "")
	t.Setenv(IDKeyFileEnv, secretFile)
	t.Setenv(codec.KeysEnv, codecKeys(t))
	n, err := NewNaming(privateConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	key := "employees/jane-doe/contract.pdf"
	id := n.FileWorkflowID("hr", key)
	if strings.Contains(id, "jane") || strings.Contains(id, "contract") || !strings.HasPrefix(id, "replicate/hr/~") {
		t.Errorf("private ID %q", id)
	}
	if again := n.FileWorkflowID("hr", key); again != id {
		t.Errorf("the same key got %q and %q: triggers would not meet", id, again)
	}
	if other := n.FileWorkflowID("hr", key+"x"); other == id {
		t.Error("two keys share an ID")
	}
	if pub := n.FileWorkflowID("images", key); pub != wire.FileWorkflowID("images", key) {
		t.Errorf("a public policy's ID changed: %q", pub)
	}
	// Another secret, another name: without the secret a guessed key cannot be
	// confirmed against an ID.
	if id == wire.PrivateFileWorkflowID("hr", key, []byte("another-secret-of-thirty-two-bytes!!")) {
		t.Error("the ID does not depend on the secret")
	}
	if id == wire.PrivateFileWorkflowID("hr2", key, []byte("a-secret-of-more-than-thirty-two-bytes")) {
		t.Error("the ID does not depend on the policy")
	}
}
