package watch

import (
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// cephRctime is the directory's recursive change time on CephFS: the latest change
// time of anything under it, which CephFS keeps up to date for every directory.
const cephRctime = "ceph.dir.rctime"

// rctime is dir's CephFS recursive change time, or "" where the file system keeps none
// (every other one): then the poll reads the directory.
func rctime(dir string) string {
	buf := make([]byte, 64)
	// Any error (no such attribute, not supported, unreadable) means: read the
	// directory, which reports a real problem itself.
	n, err := unix.Getxattr(dir, cephRctime, buf)
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}

// pruner decides, during one poll, which directories need not be read again: those
// whose recursive change stamp is the one the poll before saw.
type pruner struct {
	root  string
	stamp func(dir string) string
	// prev and next are the stamps by directory ("" for the root, else "a/b/").
	prev, next map[string]string
	// pruned are the directories carried over from the previous scan.
	pruned map[string]bool
}

func newPruner(root string, stamp func(string) string, prev map[string]string) *pruner {
	return &pruner{root: root, stamp: stamp, prev: prev, next: map[string]string{}, pruned: map[string]bool{}}
}

// unchanged reports whether dir ("" for the root) has the stamp it had at the last
// poll, recording its current stamp either way.
func (p *pruner) unchanged(dir string) bool {
	s := p.stamp(filepath.Join(p.root, filepath.FromSlash(dir)))
	if s == "" {
		return false
	}
	p.next[dir] = s
	if p.prev[dir] == s {
		p.pruned[dir] = true
		return true
	}
	return false
}

// carried reports whether key lies under a pruned directory: its previous state holds.
func (p *pruner) carried(key string) bool {
	if len(p.pruned) == 0 {
		return false
	}
	for i := strings.IndexByte(key, '/'); i >= 0; i = next(key, i) {
		if p.pruned[key[:i+1]] {
			return true
		}
	}
	return false
}

// next is the index of the '/' after position i in key, or -1.
func next(key string, i int) int {
	j := strings.IndexByte(key[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}
