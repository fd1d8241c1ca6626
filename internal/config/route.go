package config

import (
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Selected reports whether the policy's include and exclude filters keep key.
func (p *Policy) Selected(key string) bool {
	for _, g := range p.Exclude {
		if ok, _ := doublestar.Match(g, key); ok {
			return false
		}
	}
	if len(p.Include) == 0 {
		return true
	}
	for _, g := range p.Include {
		if ok, _ := doublestar.Match(g, key); ok {
			return true
		}
	}
	return false
}

// Route returns the destinations key goes to, in the policy's destination order: those
// of the first matching rule, every destination when there are no rules, none when
// rules exist and none matches or the filters drop the key.
func (p *Policy) Route(key string) []string {
	if !p.Selected(key) {
		return nil
	}
	if len(p.Rules) == 0 {
		return destinationNames(p)
	}
	for _, r := range p.Rules {
		if ok, _ := doublestar.Match(r.Match, key); ok {
			var out []string
			for _, d := range p.Destinations {
				for _, to := range r.To {
					if to == d.Name {
						out = append(out, d.Name)
						break
					}
				}
			}
			return out
		}
	}
	return nil
}

// ExcludesDir reports whether an exclude filter drops every key under dir ("a/b/",
// with its trailing slash), so that a walk need not read it at all: an exclude such as
// ".snapshot/**" keeps the walk out of every snapshot directory. Only excludes can
// tell: an include list may match something deeper.
func (p *Policy) ExcludesDir(dir string) bool {
	d := strings.TrimSuffix(dir, "/")
	for _, g := range p.Exclude {
		if g == "**" {
			return true
		}
		base, ok := strings.CutSuffix(g, "/**")
		if !ok {
			continue
		}
		// The directory itself or any of its ancestors.
		for at := d; at != ""; {
			if m, _ := doublestar.Match(base, at); m {
				return true
			}
			i := strings.LastIndexByte(at, '/')
			if i < 0 {
				break
			}
			at = at[:i]
		}
	}
	return false
}
