package wire

// Encodings of a key list's pages (KeyList.Encoding).
const (
	// KeyListLegacy is the first format: one key per line, pages named NNNNNNNN.keys.
	// A key holding a newline cannot be written in it (it would read back as two
	// keys), so it is only read, for the lists that committed workflow histories
	// still refer to.
	KeyListLegacy = ""
	// KeyListJSONL is one JSON value per line, pages named NNNNNNNN.jsonl: a JSON
	// string when the key is valid UTF-8 (every key then round-trips exactly, with
	// newlines, carriage returns and quotes escaped), else {"b64": "<standard base64
	// of the key's bytes>"}, because encoding/json would replace invalid bytes with
	// U+FFFD and so change the key.
	KeyListJSONL = "jsonl"
)

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
	// Encoding of the pages: "" is the legacy newline format (KeyListLegacy),
	// "jsonl" one JSON string per line (KeyListJSONL). Absent from the lists of
	// older histories, which therefore keep reading as the legacy format.
	Encoding string `json:"encoding,omitempty"`
}
