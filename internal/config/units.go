package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written like 90s, 5m or 1h30m.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write 30s, 5m, 1h)", n.Line, n.Value)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %q is negative", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ByteRate is bytes per second, written like 200MiB/s, 50MB/s or 1048576.
type ByteRate int64

var units = []struct {
	suffix string
	factor int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseByteRate parses 200MiB/s, 10MB/s, 1GiB/s or a plain number of bytes/s.
func ParseByteRate(s string) (ByteRate, error) {
	v := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "/s"))
	factor := int64(1)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, factor = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a byte rate (write 200MiB/s, 50MB/s or bytes per second)", s)
	}
	return ByteRate(n * float64(factor)), nil
}

// ByteSize is a number of bytes, written like 16MiB, 8MB or 1048576.
type ByteSize int64

// ParseByteSize parses 16MiB, 8MB, 1GiB or a plain number of bytes.
func ParseByteSize(s string) (ByteSize, error) {
	if strings.HasSuffix(strings.TrimSpace(s), "/s") {
		return 0, fmt.Errorf("%q is a rate, not a size (write 16MiB, 8MB or bytes)", s)
	}
	v, err := ParseByteRate(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (write 16MiB, 8MB or bytes)", s)
	}
	return ByteSize(v), nil
}

// UnmarshalYAML parses a byte size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// UnmarshalYAML parses a byte rate.
func (b *ByteRate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteRate(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}
