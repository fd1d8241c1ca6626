package wire

// KeyList is a reference to a list of keys (a batch, a reconcile's sync or delete
// list) stored in pages in the policy's state location: workflows carry it instead of
// the keys, so that a list of any length costs a few bytes of history.
type KeyList struct {
	// Prefix of the pages in the state location.
	Prefix string `json:"prefix"`
	// PageSize is the number of keys per page (the last may hold fewer).
	PageSize int `json:"page_size"`
	// Pages is the number of pages.
	Pages int `json:"pages"`
	// Count is the number of keys.
	Count int `json:"count"`
}
