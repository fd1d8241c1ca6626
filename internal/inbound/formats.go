package inbound

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// s3Entity names the bucket and object of an S3 event, in both S3's record format and
// EventBridge's detail.
type s3Entity struct {
	Bucket struct {
		Name string `json:"name"`
	} `json:"bucket"`
	Object struct {
		Key       string `json:"key"`
		Sequencer string `json:"sequencer"`
	} `json:"object"`
}

// s3Record is one record of an S3 event notification (MinIO's webhook, S3 to SNS or
// SQS with raw delivery).
type s3Record struct {
	EventName string   `json:"eventName"`
	S3        s3Entity `json:"s3"`
}

// parseS3 reads an S3 event notification ({"Records": [...]}) or an EventBridge S3
// event ({"detail-type": "Object Created", "detail": {...}}). Keys in S3 records are
// URL-encoded (spaces as '+').
func parseS3(body []byte, _ http.Header) ([]change, []byte, error) {
	var n struct {
		Records    []s3Record `json:"Records"`
		DetailType string     `json:"detail-type"`
		ID         string     `json:"id"`
		Detail     s3Entity   `json:"detail"`
	}
	if err := decode(body, &n); err != nil {
		return nil, nil, err
	}
	if n.DetailType != "" {
		if n.Detail.Bucket.Name == "" || n.Detail.Object.Key == "" {
			return nil, nil, errors.New("an EventBridge event without detail.bucket.name and detail.object.key")
		}
		return []change{{id: "eventbridge/" + n.ID, scheme: "s3", bucket: n.Detail.Bucket.Name, key: n.Detail.Object.Key, sequencer: n.Detail.Object.Sequencer}}, nil, nil
	}
	if n.Records == nil {
		return nil, nil, errors.New(`no "Records" (an S3 event notification) and no "detail-type" (an EventBridge event)`)
	}
	var out []change
	for i, r := range n.Records {
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil || r.S3.Bucket.Name == "" || key == "" || !strings.HasPrefix(r.EventName, "s3:") && !strings.Contains(r.EventName, "Object") {
			return nil, nil, fmt.Errorf("record %d lacks an eventName, s3.bucket.name or a URL-encoded s3.object.key", i)
		}
		// S3 records carry no event ID: the object's sequencer orders and identifies
		// its changes.
		id := ""
		if r.S3.Object.Sequencer != "" {
			id = "s3/" + r.S3.Bucket.Name + "/" + key + "/" + r.S3.Object.Sequencer + "/" + r.EventName
		}
		out = append(out, change{id: id, scheme: "s3", bucket: r.S3.Bucket.Name, key: key, sequencer: r.S3.Object.Sequencer})
	}
	return out, nil, nil
}

// parseGCS reads a Pub/Sub push message of a GCS notification: the attributes name
// the bucket, object and generation; the message ID identifies the delivery.
func parseGCS(body []byte, _ http.Header) ([]change, []byte, error) {
	var push struct {
		Message *struct {
			Attributes map[string]string `json:"attributes"`
			Data       string            `json:"data"`
			MessageID  string            `json:"messageId"`
		} `json:"message"`
		Subscription string `json:"subscription"`
	}
	if err := decode(body, &push); err != nil {
		return nil, nil, err
	}
	m := push.Message
	if m == nil || m.MessageID == "" {
		return nil, nil, errors.New(`no "message" with a "messageId" (a Pub/Sub push message)`)
	}
	a := m.Attributes
	if a["bucketId"] == "" || a["objectId"] == "" || a["eventType"] == "" {
		return nil, nil, errors.New("the message's attributes lack bucketId, objectId or eventType (a GCS notification)")
	}
	if m.Data != "" {
		if _, err := base64.StdEncoding.DecodeString(m.Data); err != nil {
			return nil, nil, fmt.Errorf("message data is not base64: %w", err)
		}
	}
	seq := a["objectGeneration"]
	if seq != "" {
		seq = fmt.Sprintf("%020s", seq)
	}
	return []change{{id: "gcs/" + m.MessageID, scheme: "gs", bucket: a["bucketId"], key: a["objectId"], sequencer: seq}}, nil, nil
}

// gridEvent is one event of the Event Grid schema.
type gridEvent struct {
	ID        string          `json:"id"`
	EventType string          `json:"eventType"`
	Subject   string          `json:"subject"`
	Data      json.RawMessage `json:"data"`
}

// parseAzure reads Event Grid events (an array, Event Grid schema): blob events, and
// the subscription validation event, answered with its code.
func parseAzure(body []byte, h http.Header) ([]change, []byte, error) {
	var events []gridEvent
	if err := decode(body, &events); err != nil {
		return nil, nil, err
	}
	var out []change
	for i, e := range events {
		switch {
		case e.EventType == "Microsoft.EventGrid.SubscriptionValidationEvent":
			var d struct {
				ValidationCode string `json:"validationCode"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil || d.ValidationCode == "" {
				return nil, nil, fmt.Errorf("event %d: a validation event without data.validationCode", i)
			}
			reply, _ := json.Marshal(map[string]string{"validationResponse": d.ValidationCode})
			return nil, reply, nil
		case strings.HasPrefix(e.EventType, "Microsoft.Storage.Blob"):
			var d struct {
				URL       string `json:"url"`
				Sequencer string `json:"sequencer"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil || d.URL == "" || e.ID == "" {
				return nil, nil, fmt.Errorf("event %d: a blob event without id or data.url", i)
			}
			account, container, key, err := blobURL(d.URL)
			if err != nil {
				return nil, nil, fmt.Errorf("event %d: %w", i, err)
			}
			out = append(out, change{id: "azure/" + e.ID, scheme: "azblob", bucket: account + "/" + container, key: key, sequencer: d.Sequencer})
		case e.EventType == "":
			return nil, nil, fmt.Errorf("event %d has no eventType (the Event Grid schema)", i)
		}
	}
	if len(events) == 0 {
		return nil, nil, errors.New("no events")
	}
	return out, nil, nil
}

// blobURL splits a blob URL into account, container and blob name:
// https://ACCOUNT.blob.core.windows.net/CONTAINER/NAME, or Azurite's
// http://HOST:PORT/ACCOUNT/CONTAINER/NAME.
func blobURL(raw string) (account, container, key string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", "", fmt.Errorf("data.url %q is not a blob URL", raw)
	}
	path := strings.TrimPrefix(u.Path, "/")
	host, _, _ := strings.Cut(u.Host, ":")
	if a, ok := strings.CutSuffix(host, ".blob.core.windows.net"); ok {
		account = a
	} else {
		account, path, _ = strings.Cut(path, "/")
	}
	container, key, _ = strings.Cut(path, "/")
	if account == "" || container == "" || key == "" {
		return "", "", "", fmt.Errorf("data.url %q lacks the account, container or blob name", raw)
	}
	return account, container, key, nil
}
