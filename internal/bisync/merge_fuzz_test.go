package bisync

import (
	"maps"
	"slices"
	"testing"
)

// FuzzMergeAndDecide merges random sorted streams of both sides and both sides'
// records, and checks every key against a reference model: each key once, in order,
// with the streams' entries, and a decision that never deletes a key changed on the
// other side, never deletes a held key, and copies towards the side that lacks it.
func FuzzMergeAndDecide(f *testing.F) {
	f.Add([]byte{0x01, 0x12, 0x23, 0x34, 0x45, 0x56})
	f.Add([]byte{0xff, 0x0f, 0xf0})
	keys := []string{"a", "a-b", "a/b", "b", "c/", "c/d", "e"}
	f.Fuzz(func(t *testing.T, input []byte) {
		type sets struct {
			a, b   map[string]Listed
			sa, sb map[string]Synced
		}
		s := sets{map[string]Listed{}, map[string]Listed{}, map[string]Synced{}, map[string]Synced{}}
		for i := 0; i+1 < len(input); i += 2 {
			k := keys[int(input[i])%len(keys)]
			etag := string(rune('0' + input[i+1]>>4&1))
			switch input[i+1] & 3 {
			case 0:
				s.a[k] = Listed{Key: k, ETag: etag, Held: input[i+1]&0x80 != 0, Subtree: k == "c/"}
			case 1:
				s.b[k] = Listed{Key: k, ETag: etag}
			case 2:
				s.sa[k] = Synced{Key: k, ETag: etag}
			case 3:
				s.sb[k] = Synced{Key: k, ETag: etag}
			}
		}
		listOf := func(m map[string]Listed) []Listed {
			var out []Listed
			for _, k := range slices.Sorted(maps.Keys(m)) {
				out = append(out, m[k])
			}
			return out
		}
		syncedOf := func(m map[string]Synced) []Synced {
			var out []Synced
			for _, k := range slices.Sorted(maps.Keys(m)) {
				out = append(out, m[k])
			}
			return out
		}
		all := map[string]bool{}
		for _, m := range []map[string]Listed{s.a, s.b} {
			for k := range m {
				all[k] = true
			}
		}
		for _, m := range []map[string]Synced{s.sa, s.sb} {
			for k := range m {
				all[k] = true
			}
		}
		var got []string
		err := Merge(seqOf(listOf(s.a)), seqOf(listOf(s.b)), seqOf(syncedOf(s.sa)), seqOf(syncedOf(s.sb)), func(it Item) error {
			got = append(got, it.Key)
			_, inA := s.a[it.Key]
			_, inB := s.b[it.Key]
			_, inSA := s.sa[it.Key]
			_, inSB := s.sb[it.Key]
			if (it.A != nil) != inA || (it.B != nil) != inB || (it.SyncedA != nil) != inSA || (it.SyncedB != nil) != inSB {
				t.Fatalf("%s: item %+v does not match the streams", it.Key, it)
			}
			held := false
			for k, l := range s.a {
				if l.Held && (k == it.Key || l.Subtree && len(it.Key) > len(k) && it.Key[:len(k)] == k) {
					held = true
				}
			}
			d := Decide(it)
			ca, cb := it.Changes()
			switch {
			case held && d.Action != Nothing:
				t.Fatalf("%s: held, yet planned %s", it.Key, d.Action)
			case d.Action == DeleteOnB && cb != Unchanged, d.Action == DeleteOnA && ca != Unchanged:
				t.Fatalf("%s: %s although the other side is %s/%s", it.Key, d.Action, ca, cb)
			case d.Action == CopyToB && it.A == nil, d.Action == CopyToA && it.B == nil:
				t.Fatalf("%s: %s from a side that does not hold it", it.Key, d.Action)
			case d.Action == BothChanged && (it.A == nil || it.B == nil):
				t.Fatalf("%s: both changed, yet one side lacks it", it.Key)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := slices.Sorted(maps.Keys(all)); !slices.Equal(got, want) {
			t.Fatalf("merged %v; want %v", got, want)
		}
	})
}
