package trigger

import (
	"fmt"
	"os"
	"strings"

	"github.com/cloudrepl/replicator/internal/codec"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/wire"
)

// Environment variables holding the secret that names the workflows of policies with
// private_keys.
const (
	IDKeyEnv     = "REPLICATOR_ID_KEY"
	IDKeyFileEnv = "REPLICATOR_ID_KEY_FILE"
)

// minIDKeyBytes is the shortest secret taken: an HMAC key shorter than its 32-byte
// output would be the weak point of the names.
const minIDKeyBytes = 32

// Naming says how each policy's keys appear in the workflow IDs and search attributes
// of its ReplicateFile runs: in the clear, or (private_keys) as an HMAC. Every process
// that starts ReplicateFile runs (the starter, the watcher, the events endpoint) must
// name them alike, or triggers for one key would not meet in one workflow.
type Naming struct {
	secrets map[string][]byte
}

// NewNaming reads the ID secret when a policy of cfg has private_keys, and refuses a
// setting that would leave keys readable: no secret, a short one, or no payload codec
// to encrypt the inputs and results that carry the key.
func NewNaming(cfg *config.File) (Naming, error) {
	var private []string
	for i := range cfg.Policies {
		if cfg.Policies[i].PrivateKeys {
			private = append(private, cfg.Policies[i].Name)
		}
	}
	if len(private) == 0 {
		return Naming{}, nil
	}
	what := fmt.Sprintf("policy %s has private_keys: true", strings.Join(private, ", "))
	secret := os.Getenv(IDKeyEnv)
	if file := os.Getenv(IDKeyFileEnv); file != "" {
		if secret != "" {
			return Naming{}, fmt.Errorf("%s: set %s or %s, not both", what, IDKeyEnv, IDKeyFileEnv)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return Naming{}, fmt.Errorf("%s: read %s: %w", what, IDKeyFileEnv, err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return Naming{}, fmt.Errorf("%s, which names workflows by an HMAC of the key: set %s (or %s, a file holding it) to a random secret of at least %d bytes, the same for every worker and starter (e.g. openssl rand -base64 48)", what, IDKeyEnv, IDKeyFileEnv, minIDKeyBytes)
	}
	if len(secret) < minIDKeyBytes {
		return Naming{}, fmt.Errorf("%s: %s is %d bytes; use a random secret of at least %d (e.g. openssl rand -base64 48)", what, IDKeyEnv, len(secret), minIDKeyBytes)
	}
	c, err := codec.FromEnv()
	if err != nil {
		return Naming{}, err
	}
	if c == nil {
		return Naming{}, fmt.Errorf("%s, but the payload codec is off, so the key would still be readable in every workflow input and result: set %s or %s", what, codec.KeysEnv, codec.KeysFileEnv)
	}
	n := Naming{secrets: map[string][]byte{}}
	for _, name := range private {
		n.secrets[name] = []byte(secret)
	}
	return n, nil
}

// Private reports whether policy keeps its keys private.
func (n Naming) Private(policy string) bool { return n.secrets[policy] != nil }

// FileWorkflowID is the ID of the key's ReplicateFile under policy.
func (n Naming) FileWorkflowID(policy, key string) string {
	if secret := n.secrets[policy]; secret != nil {
		return wire.PrivateFileWorkflowID(policy, key, secret)
	}
	return wire.FileWorkflowID(policy, key)
}
