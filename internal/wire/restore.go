package wire

import "time"

// RestoreWorkflowID is the ID of a restore.
func RestoreWorkflowID(policy, id string) string { return "restore/" + policy + "/" + id }

// RestoreSpec says what a restore copies, from where, to where.
type RestoreSpec struct {
	Policy string
	// From is the destination whose replicas are restored.
	From string
	// To is the URL of the location restored to; "" is the policy's source.
	To string `json:",omitempty"`
	// Prefix restricts the restore to keys starting with it.
	Prefix string `json:",omitempty"`
	// AsOf, when set, restores the versions that were current then (bucket
	// versioning); zero restores the current replicas.
	AsOf time.Time `json:",omitzero"`
	// Overwrite replaces objects of the target whose content differs; without it
	// they are left and counted.
	Overwrite bool `json:",omitempty"`
}

// RestoreInput starts (or continues) a Restore.
type RestoreInput struct {
	RestoreSpec
	// ID names the restore's key list in the state location.
	ID string
	// List, NextPage and Result carry a restore over continue-as-new.
	List     *KeyList       `json:",omitempty"`
	NextPage int            `json:",omitempty"`
	Result   *RestoreResult `json:",omitempty"`
}

// RestoreResult is what a restore did.
type RestoreResult struct {
	Policy  string
	From    string
	To      string `json:",omitempty"`
	Outcome RunOutcome
	// Keys the destination held (under the prefix, at the time asked).
	Keys int
	// Restored, Skipped (the target held the same bytes), Left (the target held other
	// bytes and the restore does not overwrite), Failed.
	Restored, Skipped, Left, Failed int
	Bytes                           int64
	// Failures names the first few keys that failed, with why.
	Failures []string `json:",omitempty"`
	// LeftKeys names the first few keys left as they were.
	LeftKeys []string `json:",omitempty"`
}

// maxRestoreNames bounds the keys a RestoreResult names.
const maxRestoreNames = 20

// Add adds a chunk's counts.
func (r *RestoreResult) Add(o RestoreResult) {
	r.Restored += o.Restored
	r.Skipped += o.Skipped
	r.Left += o.Left
	r.Failed += o.Failed
	r.Bytes += o.Bytes
	for _, f := range o.Failures {
		if len(r.Failures) < maxRestoreNames {
			r.Failures = append(r.Failures, f)
		}
	}
	for _, k := range o.LeftKeys {
		if len(r.LeftKeys) < maxRestoreNames {
			r.LeftKeys = append(r.LeftKeys, k)
		}
	}
}

// RestoreProgress answers the progress query of Restore.
type RestoreProgress struct {
	Phase  string
	Pages  int
	Done   int
	Result *RestoreResult
}

// PlanRestoreResult is the restore's key list.
type PlanRestoreResult struct {
	List KeyList
}

// RestoreChunkInput restores one page of the key list.
type RestoreChunkInput struct {
	RestoreSpec
	List KeyList
	Page int
}
