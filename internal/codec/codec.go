// Package codec encrypts everything the replicator's workflows carry (keys, paths,
// metadata, results: every payload of inputs, results, signals, queries, heartbeats,
// memos and summaries) with AES-256-GCM before it reaches Temporal, so that the
// histories hold ciphertext. Keys have IDs: payloads name the key that encrypted
// them, new payloads use the first key, and older keys listed after it still decrypt
// what they encrypted (rotation). The worker serves the same codec over HTTP for the
// Web UI (Temporal's remote codec protocol), to operators who hold its token.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Encoding is the metadata "encoding" of an encrypted payload.
const Encoding = "binary/encrypted"

// KeyIDMeta is the metadata entry naming the key that encrypted a payload.
const KeyIDMeta = "encryption-key-id"

// Environment variables that configure the codec.
const (
	// KeysEnv holds "id=base64key" entries separated by commas; the first encrypts.
	KeysEnv = "REPLICATOR_CODEC_KEYS"
	// KeysFileEnv names a file holding the same entries, one per line (comments with #).
	KeysFileEnv = "REPLICATOR_CODEC_KEYS_FILE"
)

// Codec is a converter.PayloadCodec with AES-256-GCM keys by ID.
type Codec struct {
	active string
	keys   map[string]cipher.AEAD
}

// Parse reads "id=base64key" entries (commas or new lines between them; '#' starts
// a comment). Each key must be 32 bytes (AES-256) in standard base64; the first
// entry is the one that encrypts.
func Parse(spec string) (*Codec, error) {
	c := &Codec{keys: map[string]cipher.AEAD{}}
	for _, line := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == '\n' }) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		id, b64, ok := strings.Cut(line, "=")
		id = strings.TrimSpace(id)
		if !ok || id == "" {
			return nil, fmt.Errorf("codec key entry %q: want id=base64key (e.g. 2026-12=%s)", redact(line), strings.Repeat("A", 43)+"=")
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("codec key %q: want 32 bytes in standard base64 (head -c 32 /dev/urandom | base64)", id)
		}
		if _, dup := c.keys[id]; dup {
			return nil, fmt.Errorf("codec key %q is listed twice", id)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("codec key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec key %q: %w", id, err)
		}
		c.keys[id] = aead
		if c.active == "" {
			c.active = id
		}
	}
	if c.active == "" {
		return nil, errors.New("no codec key given")
	}
	return c, nil
}

// redact keeps an entry's ID and hides its key in messages.
func redact(entry string) string {
	if id, _, ok := strings.Cut(entry, "="); ok {
		return id + "=…"
	}
	if len(entry) > 8 {
		return entry[:4] + "…"
	}
	return entry
}

// FromEnv returns the codec REPLICATOR_CODEC_KEYS or REPLICATOR_CODEC_KEYS_FILE
// configure, or nil when neither is set.
func FromEnv() (*Codec, error) {
	spec := os.Getenv(KeysEnv)
	if file := os.Getenv(KeysFileEnv); file != "" {
		if spec != "" {
			return nil, fmt.Errorf("set %s or %s, not both", KeysEnv, KeysFileEnv)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeysFileEnv, err)
		}
		spec = string(b)
	}
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	c, err := Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeysEnv, err)
	}
	return c, nil
}

// ActiveKeyID is the ID of the key that encrypts.
func (c *Codec) ActiveKeyID() string { return c.active }

// Encode encrypts each payload whole (data and metadata) with the active key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.keys[c.active]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{converter.MetadataEncoding: []byte(Encoding), KeyIDMeta: []byte(c.active)},
			Data:     aead.Seal(nonce, nonce, plain, []byte(c.active)),
		}
	}
	return out, nil
}

// Decode decrypts payloads this codec encrypted, with the key each names, and passes
// others through (histories written before the codec was turned on).
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[KeyIDMeta])
		aead, ok := c.keys[id]
		if !ok {
			return nil, fmt.Errorf("a payload was encrypted with codec key %q, which %s lacks: keep retired keys listed after the active one", id, KeysEnv)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize() {
			return nil, fmt.Errorf("an encrypted payload is too short (%d bytes)", len(data))
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("a payload does not decrypt with codec key %q: it was damaged or encrypted under another key of that ID", id)
		}
		var decoded commonpb.Payload
		if err := proto.Unmarshal(plain, &decoded); err != nil {
			return nil, fmt.Errorf("decrypted payload: %w", err)
		}
		out[i] = &decoded
	}
	return out, nil
}

// DataConverter is Temporal's default data converter with the codec applied to
// every payload.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}
