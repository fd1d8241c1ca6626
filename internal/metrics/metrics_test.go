package metrics

import (
	"net/http"
	"testing"
)

func TestRequestKind(t *testing.T) {
	for raw, want := range map[string]string{
		"GET http://minio/bucket?list-type=2&prefix=a":                               "list",
		"GET http://minio/bucket/key?uploads":                                        "list",
		"HEAD http://minio/bucket/key":                                               "object",
		"GET http://minio/bucket/key":                                                "object",
		"GET http://gcs/storage/v1/b/bucket/o?prefix=a":                              "list",
		"GET http://gcs/storage/v1/b/bucket/o/key%2Fa":                               "object",
		"GET http://azurite/devstoreaccount1/c?restype=container&comp=list&prefix=a": "list",
		"PUT http://azurite/devstoreaccount1/c/blob?comp=block&blockid=x":            "object",
		"GET http://azurite/devstoreaccount1/c/blob":                                 "object",
	} {
		var method, u string
		for i := range raw {
			if raw[i] == ' ' {
				method, u = raw[:i], raw[i+1:]
				break
			}
		}
		r, err := http.NewRequest(method, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := RequestKind(r); got != want {
			t.Errorf("%s: %s, want %s", raw, got, want)
		}
	}
}
