package s3store

import (
	"encoding/base64"
	"fmt"
	"mime"
	"strings"
)

// encodeMetadata turns the stored metadata map into S3 user metadata. S3 carries it in
// x-amz-meta-* headers, which hold only printable ASCII and lose surrounding spaces,
// so other values travel as RFC 2047 encoded words: the form AWS itself returns for
// such values, which decodeMetadata reverses.
func encodeMetadata(m map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if !isToken(k) {
			return nil, fmt.Errorf("metadata name %q cannot be an HTTP header name", k)
		}
		out[k] = encodeValue(v)
	}
	return out, nil
}

func encodeValue(v string) string {
	needs := v != strings.TrimSpace(v) || strings.Contains(v, "=?")
	for i := 0; i < len(v) && !needs; i++ {
		needs = v[i] < 0x20 || v[i] > 0x7e
	}
	if !needs {
		return v
	}
	return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}

// decodeMetadata reverses encodeMetadata on what S3 returns.
func decodeMetadata(m map[string]string) map[string]string {
	var dec mime.WordDecoder
	out := make(map[string]string, len(m))
	for k, v := range m {
		if strings.Contains(v, "=?") {
			if d, err := dec.DecodeHeader(v); err == nil {
				v = d
			}
		}
		out[k] = v
	}
	return out
}

// isToken reports whether s is an RFC 9110 token, the syntax of a header name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
