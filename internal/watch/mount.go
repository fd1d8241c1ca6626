package watch

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// networkFileSystems are the file systems whose other clients' changes the local
// kernel never reports through inotify.
var networkFileSystems = map[string]bool{
	"nfs": true, "nfs4": true, "ceph": true, "fuse.ceph": true, "fuse.ceph-fuse": true, "cifs": true, "smb3": true, "smbfs": true,
	"9p": true, "fuse.sshfs": true, "glusterfs": true, "fuse.glusterfs": true, "lustre": true, "gpfs": true, "beegfs": true,
}

func networkFS(fsType string) bool { return networkFileSystems[fsType] }

// mountType is the type of the file system dir is on, from the mount table
// (/proc/self/mountinfo): that of the longest mount point holding dir.
func mountType(dir string) (string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("watch %s: %w", dir, err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("read the mount table to choose a watch mode (set watch.mode to inotify or poll instead): %w", err)
	}
	defer f.Close()
	best, bestType := "", ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mountPoint, fsType, ok := parseMountInfo(sc.Text())
		if !ok || !within(real, mountPoint) || len(mountPoint) < len(best) {
			continue
		}
		best, bestType = mountPoint, fsType
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read the mount table: %w", err)
	}
	if bestType == "" {
		return "", fmt.Errorf("no mount holds %s (set watch.mode to inotify or poll)", dir)
	}
	return bestType, nil
}

// parseMountInfo reads the mount point (field 5) and the file system type (the first
// field after the "-" separator) of one mountinfo line.
func parseMountInfo(line string) (mountPoint, fsType string, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 7 {
		return "", "", false
	}
	for i := 6; i < len(fields)-1; i++ {
		if fields[i] == "-" {
			return unescapeOctal(fields[4]), fields[i+1], true
		}
	}
	return "", "", false
}

// unescapeOctal undoes the kernel's \ooo escapes of spaces, tabs and backslashes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// within reports whether path is mountPoint or under it.
func within(path, mountPoint string) bool {
	if mountPoint == "/" {
		return true
	}
	return path == mountPoint || strings.HasPrefix(path, mountPoint+"/")
}
