package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// maxWorkflowIDBytes keeps workflow IDs well under Temporal's default limit of 1,000
// bytes, leaving room for the schedule's appended time and a child's suffix.
const maxWorkflowIDBytes = 800

// FileWorkflowID is the ID of the ReplicateFile workflow of one key: triggers for the
// same key meet in one workflow. The SDK sends workflow IDs in a gRPC header, which
// takes printable ASCII only, so every other byte of the key (and '%') is written as
// %XX: "replicate/invoices/caf%C3%A9.pdf". An ID too long for Temporal is cut and ends
// in a hash of the whole key, so two long keys never share an ID; the key itself stays
// in the ReplicationKey search attribute and the input.
func FileWorkflowID(policy, key string) string {
	id := "replicate/" + policy + "/" + asciiID(key)
	if len(id) <= maxWorkflowIDBytes {
		return id
	}
	sum := sha256.Sum256([]byte(key))
	suffix := "~#" + hex.EncodeToString(sum[:12])
	cut := maxWorkflowIDBytes - len(suffix)
	if i := strings.LastIndexByte(id[:cut], '%'); i >= cut-2 {
		cut = i // never cut an escape in two
	}
	return id[:cut] + suffix
}

// PrivateFileWorkflowID is the ID of a key's ReplicateFile for a policy with
// private_keys: the key is replaced by an HMAC-SHA256 of it under secret, so the ID
// (which Temporal stores and shows in the clear, codec or not) does not reveal the key
// to anyone without the secret, while triggers for the same key still meet in one
// workflow. The policy is part of the MAC so that two policies' IDs of one key cannot
// be linked.
func PrivateFileWorkflowID(policy, key string, secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(policy))
	mac.Write([]byte{0})
	mac.Write([]byte(key))
	return "replicate/" + policy + "/~" + hex.EncodeToString(mac.Sum(nil))
}

// asciiID escapes what a gRPC header cannot carry.
func asciiID(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// BatchWorkflowID is the ID of a batch.
func BatchWorkflowID(policy, id string) string { return "batch/" + policy + "/" + id }

// ReconcileWorkflowID is the ID of a reconcile started by hand; scheduled ones are
// named by their schedule (ScheduleID) plus the time Temporal appends.
func ReconcileWorkflowID(policy string, t time.Time) string {
	return "reconcile/" + policy + "/" + t.UTC().Format("20060102T150405Z")
}

// ScheduleID is the ID of a policy's reconcile schedule.
func ScheduleID(policy string) string { return "reconcile/" + policy }

// StagingPrefix is where atomic mode stages versions, under each destination's root.
const StagingPrefix = ".replicator/staging/"

// StagingKey is where atomic mode stages one version of a key: fixed length whatever
// the key, and distinct per version so that two versions never share a stage.
func StagingKey(key, version string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + version))
	return StagingPrefix + hex.EncodeToString(sum[:20])
}

// RunStagingKey is where one run stages one version of a key: unique per run, so that
// two runs of the same version (an atomic batch and a ReplicateFile, say) never share
// a stage that one of them removes under the other. run "" is StagingKey, the name
// runs used before.
func RunStagingKey(key, version, run string) string {
	if run == "" {
		return StagingKey(key, version)
	}
	return StagingKey(key, version+"\x00"+run)
}

// UndoPrefix is where atomic commits keep the versions they replace until every
// destination committed.
const UndoPrefix = ".replicator/undo/"

// UndoKey is where one run keeps the previous version of a key it commits over.
func UndoKey(key, run string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + run))
	return UndoPrefix + hex.EncodeToString(sum[:20])
}
