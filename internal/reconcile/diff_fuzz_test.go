package reconcile

import (
	"iter"
	"maps"
	"slices"
	"strings"
	"testing"
)

// fuzzKeys are the keys fuzz inputs pick from: siblings, a subtree that may be held,
// and names that sort around '/' ("a-b" before "a/b").
var fuzzKeys = []string{"a", "a-b", "a/b", "a/c", "b", "d/", "d/x", "d/y/z", "e", "e.txt", "f/g"}

func seqOf[T any](items []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, it := range items {
			if !yield(it, nil) {
				return
			}
		}
	}
}

// FuzzDiff merges random sorted streams (a source, one destination's manifest and
// listing) and compares every decision with a reference model of the rules written
// apart from the merge: each key once, in order, and the action the table says;
// never a delete under a held subtree or in copy mode.
func FuzzDiff(f *testing.F) {
	f.Add([]byte{0x11, 0x23, 0x45, 0x67, 0x89}, true)
	f.Add([]byte{0x5f, 0x6f, 0x7f, 0x8f}, false)
	f.Fuzz(func(t *testing.T, input []byte, mirror bool) {
		src := map[string]SourceEntry{}
		man := map[string]ManifestEntry{}
		list := map[string]DestEntry{}
		for i := 0; i+1 < len(input); i += 2 {
			key := fuzzKeys[int(input[i])%len(fuzzKeys)]
			b := input[i+1]
			v := string(rune('1' + b&1))
			switch (b >> 1) & 3 {
			case 0:
				if strings.HasSuffix(key, "/") {
					src[key] = SourceEntry{Key: key, Held: true, Subtree: true}
				} else {
					src[key] = SourceEntry{Key: key, Version: v, Held: b&0x40 != 0}
				}
			case 1:
				if !strings.HasSuffix(key, "/") {
					man[key] = ManifestEntry{Key: key, SourceVersion: v, ETag: "e" + string(rune('0'+(b>>3)&1))}
				}
			default:
				if !strings.HasSuffix(key, "/") {
					list[key] = DestEntry{Key: key, ETag: "e" + string(rune('0'+(b>>3)&1))}
				}
			}
		}
		sorted := func(keys []string) []string { return slices.Sorted(slices.Values(keys)) }
		var srcList []SourceEntry
		for _, k := range sorted(slices.Collect(maps.Keys(src))) {
			srcList = append(srcList, src[k])
		}
		var manList []ManifestEntry
		for _, k := range sorted(slices.Collect(maps.Keys(man))) {
			manList = append(manList, man[k])
		}
		var destList []DestEntry
		for _, k := range sorted(slices.Collect(maps.Keys(list))) {
			destList = append(destList, list[k])
		}
		all := map[string]bool{}
		for k := range src {
			all[k] = true
		}
		for k := range man {
			all[k] = true
		}
		for k := range list {
			all[k] = true
		}
		want := sorted(slices.Collect(maps.Keys(all)))
		var got []string
		err := Diff(seqOf(srcList), []Destination{{Name: "d", Manifest: seqOf(manList), Listing: seqOf(destList)}}, Options{Mirror: mirror},
			func(d *Decision) error {
				got = append(got, d.Key)
				if a, w := d.Actions[0], reference(d.Key, src, man, list, mirror); a != w {
					t.Fatalf("%s: %q; the rules say %q (source %+v, manifest %+v, listing %+v, mirror %v)", d.Key, a, w, src[d.Key], man[d.Key], list[d.Key], mirror)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("decided %v; want every key once, in order: %v", got, want)
		}
	})
}

// reference is the rule table, restated: held entries and everything under a held
// subtree keep what they have; otherwise missing replicas are copied, unknown or
// changed ones adopted, changed sources updated, and keys gone from the source
// deleted in mirror mode and reported in copy mode.
func reference(key string, src map[string]SourceEntry, man map[string]ManifestEntry, list map[string]DestEntry, mirror bool) Action {
	for k, s := range src {
		if s.Held && (k == key || s.Subtree && strings.HasPrefix(key, k)) {
			return Unchanged
		}
	}
	s, inSrc := src[key]
	m, inMan := man[key]
	l, inList := list[key]
	switch {
	case !inSrc && !inList:
		return Unchanged
	case !inSrc && mirror:
		return Delete
	case !inSrc:
		return Extra
	case !inList:
		return Copy
	case !inMan || m.ETag != l.ETag || m.Size != l.Size:
		return Adopt
	case m.SourceVersion != s.Version:
		return Update
	}
	return Unchanged
}
