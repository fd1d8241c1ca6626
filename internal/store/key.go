package store

import (
	"fmt"
	"mime"
	"path"
	"strings"
	"unicode/utf8"
)

// MaxKeyBytes is the longest object name S3, GCS and Azure Blob all accept, counted
// in UTF-8 bytes of the full name (prefix included).
const MaxKeyBytes = 1024

// ValidateKey checks a key against the rules every backend shares, so that a key that
// one cloud would refuse is refused everywhere with a message naming it: non-empty,
// valid UTF-8 without NUL or other control characters, '/'-separated relative path
// without empty, "." or ".." segments, and at most MaxKeyBytes together with the
// store's prefix (prefixLen bytes).
func ValidateKey(key string, prefixLen int) error {
	switch {
	case key == "":
		return fmt.Errorf("empty key")
	case !utf8.ValidString(key):
		return fmt.Errorf("key %q is not valid UTF-8: rename the file", key)
	case len(key)+prefixLen > MaxKeyBytes:
		return fmt.Errorf("key %q is %d bytes with the destination prefix; S3, GCS and Azure allow %d: shorten the path or the prefix", key, len(key)+prefixLen, MaxKeyBytes)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("key %q is absolute: keys are relative to the store's root", key)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("key %q holds control character %U: rename the file", key, r)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("key %q has an empty path segment (a doubled or trailing '/')", key)
		case ".", "..":
			return fmt.Errorf("key %q has a %q segment: keys cannot leave or alias the root", key, seg)
		}
	}
	return nil
}

// IsInternal reports whether key lies in the replicator's own subtree.
func IsInternal(key string) bool { return strings.HasPrefix(key, InternalPrefix) }

// ContentTypeOf derives a content type from the key's extension, defaulting to
// application/octet-stream.
func ContentTypeOf(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// JoinPrefix joins a store prefix ("" or "a/b") and a key.
func JoinPrefix(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

// XMLUnsafeRune returns the first rune of key that XML 1.0 cannot carry (U+FFFE,
// U+FFFF; ValidateKey already refuses the control characters), or -1. Stores that
// list in XML (S3, Azure) cannot list such a key back as it was stored.
func XMLUnsafeRune(key string) rune {
	for _, r := range key {
		if r == 0xFFFE || r == 0xFFFF {
			return r
		}
	}
	return -1
}

// LongestSegment returns the longest '/'-separated segment of key.
func LongestSegment(key string) string {
	longest := ""
	for _, seg := range strings.Split(key, "/") {
		if len(seg) > len(longest) {
			longest = seg
		}
	}
	return longest
}
