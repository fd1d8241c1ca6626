package azstore

import (
	"encoding/base64"
	"mime"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/cloudrepl/replicator/internal/store"
)

// replicatorNames maps the Azure form of the replicator's own metadata names back to
// the store package's names.
var replicatorNames = map[string]string{
	azureName(store.MetaSHA256):        store.MetaSHA256,
	azureName(store.MetaSourceSize):    store.MetaSourceSize,
	azureName(store.MetaSourceVersion): store.MetaSourceVersion,
	azureName(store.MetaVector):        store.MetaVector,
}

// azureName turns a metadata name into a C# identifier, as Azure requires: ASCII
// letters, digits and '_', not starting with a digit. Anything else becomes '_'.
func azureName(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	// Non-ASCII runes turned into several '_' above; that is fine, names only need to
	// be stable and valid.
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

// toAzureMetadata converts a stored-metadata map (store.EncodeMetadata) to what Azure
// accepts. When two names collide after translation, the replicator's own entries win,
// then the name that sorts first.
func toAzureMetadata(m map[string]string) map[string]*string {
	out := make(map[string]*string, len(m))
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	isOwn := func(k string) bool {
		return k == store.MetaSHA256 || k == store.MetaSourceSize || k == store.MetaSourceVersion || k == store.MetaVector
	}
	for _, k := range names {
		if n := azureName(k); !isOwn(k) && out[n] == nil {
			v := encodeValue(m[k])
			out[n] = &v
		}
	}
	for _, k := range names {
		if isOwn(k) {
			v := encodeValue(m[k])
			out[azureName(k)] = &v
		}
	}
	return out
}

// fromAzureMetadata converts metadata as Azure returns it (names in any case) to the
// map store.DecodeMetadata reads.
func fromAzureMetadata(m map[string]*string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		name := strings.ToLower(k)
		if own, ok := replicatorNames[name]; ok {
			name = own
		}
		if v != nil {
			out[name] = decodeValue(*v)
		} else {
			out[name] = ""
		}
	}
	return out
}

// encodeValue keeps printable ASCII as is and stores anything else (non-ASCII,
// control characters, leading or trailing blanks that HTTP would trim, or text that
// would read as an encoded word) as one RFC 2047 encoded word.
func encodeValue(v string) string {
	needs := strings.Contains(v, "=?") || strings.TrimSpace(v) != v
	for i := 0; i < len(v) && !needs; i++ {
		needs = v[i] < 0x20 || v[i] > 0x7e
	}
	if !needs {
		return v
	}
	return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}

var wordDecoder = new(mime.WordDecoder)

// decodeValue reverses encodeValue; values that are not valid encoded words are
// returned as stored.
func decodeValue(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

// etagToken is the ETag as the store's token: Azure's quoted form, whichever way the
// response carried it (headers quote it, listings may not).
func etagToken(e *azcore.ETag) string {
	if e == nil {
		return ""
	}
	return quoteETag(string(*e))
}

func quoteETag(s string) string {
	if s == "" || s == "*" || strings.HasPrefix(s, `"`) || strings.HasPrefix(s, "W/") {
		return s
	}
	return `"` + s + `"`
}
