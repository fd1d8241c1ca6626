package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzParse: any input is accepted as a valid config or refused with an error; an
// accepted config has the defaults and invariants the workers rely on, and each
// problem of a refusal says what is wrong.
func FuzzParse(f *testing.F) {
	f.Add("state: file:///s\npolicies: [{name: p, source: file:///src, destinations: [{name: b, url: \"gs://bucket/b\"}]}]\n")
	f.Add("state: file:///s\npolicies: [{name: p, source: file:///src, mode: bidirectional, conflict: prefer-b, destinations: [{name: b, url: \"s3://bucket/b?region=eu-west-1\"}]}]\n")
	f.Add("state: file:///s\npolicies: [{name: p, source: file:///src, mode: mirror, rules: [{match: \"a/**\", to: [b]}], destinations: [{name: b, url: \"azblob://acct/c/p\"}], limits: {bandwidth: 10MiB/s}}]\n")
	f.Add("policies: 3")
	f.Add(": :")
	f.Fuzz(func(t *testing.T, doc string) {
		cfg, err := Parse(strings.NewReader(doc))
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					// A problem of the whole file (it is empty) has no path.
					if p.Message == "" {
						t.Fatalf("problem without a message: %+v", p)
					}
				}
			}
			return
		}
		for _, p := range cfg.Policies {
			if p.Name == "" || len(p.Destinations) == 0 {
				t.Fatalf("accepted a policy without a name or destinations: %+v", p)
			}
			if !slices.Contains([]string{ModeCopy, ModeMirror, ModeBidirectional}, p.Mode) {
				t.Fatalf("accepted mode %q", p.Mode)
			}
			if p.Mode == ModeBidirectional && (len(p.Destinations) != 1 || p.Conflict == "") {
				t.Fatalf("accepted a bidirectional policy with %d destinations, conflict %q", len(p.Destinations), p.Conflict)
			}
			if p.Limits.Concurrency < 1 {
				t.Fatalf("accepted concurrency %d", p.Limits.Concurrency)
			}
		}
	})
}
