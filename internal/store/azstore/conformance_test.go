//go:build integration

package azstore

import (
	"context"
	"encoding/base64"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

const (
	connEnv       = "AZURE_STORAGE_CONNECTION_STRING"
	endpointEnv   = "REPLICATOR_AZURE_ENDPOINT"
	testContainer = "replicator-conformance"
)

// testEnv returns the Azurite endpoint and the account it serves, creating the test
// container once.
func testEnv(t *testing.T) (endpoint, account string) {
	t.Helper()
	conn, endpoint := os.Getenv(connEnv), os.Getenv(endpointEnv)
	if conn == "" || endpoint == "" {
		t.Fatalf("%s and %s are not set: run `make test` or `. deploy/local/env.sh` with the stack started", connEnv, endpointEnv)
	}
	account = endpoint[strings.LastIndex(endpoint, "/")+1:]
	c, err := container.NewClientFromConnectionString(conn, testContainer, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("creating container %s (is Azurite running? `bash deploy/local/start.sh azurite`): %v", testContainer, err)
	}
	return endpoint, account
}

func open(t *testing.T, rawURL, env string, tuning store.Tuning) store.Store {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), store.Options{Name: "azurite", URL: u,
		Credentials: store.Credentials{AzureConnectionStringEnv: env}, Tuning: tuning})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func storeURL(endpoint, account, containerName, prefix string) string {
	return "azblob://" + account + "/" + containerName + "/" + prefix + "?endpoint=" + url.QueryEscape(endpoint)
}

var smallTuning = store.Tuning{PartSize: 5 << 20, Threshold: 5 << 20, Concurrency: 4}

func TestConformance(t *testing.T) {
	endpoint, account := testEnv(t)
	storetest.Run(t, storetest.Harness{
		NewAt: func(t *testing.T, prefix string) store.Store {
			return open(t, storeURL(endpoint, account, testContainer, prefix), connEnv, smallTuning)
		},
		PartSize: smallTuning.PartSize,
		// Azure has no multipart copy; a copy of a blob made of several blocks still
		// exercises Copy Blob on committed blocks.
		CopyLargeSize: 12 << 20,
		// Azurite, unlike Azure, lists keys above U+FFFF in UTF-16 order.
		ListsUTF16Order: true,
		MissingLocation: func(t *testing.T) store.Store {
			return open(t, storeURL(endpoint, account, "no-such-container-here", "p"), connEnv, smallTuning)
		},
		BadCredentials: func(t *testing.T) store.Store {
			wrongKey := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("not the key ", 6)))
			bad := regexp.MustCompile(`AccountKey=[^;]*`).ReplaceAllString(os.Getenv(connEnv), "AccountKey="+wrongKey)
			t.Setenv("AZSTORE_TEST_BAD_CONNECTION_STRING", bad)
			return open(t, storeURL(endpoint, account, testContainer, "p"), "AZSTORE_TEST_BAD_CONNECTION_STRING", smallTuning)
		},
		Unreachable: func(t *testing.T) store.Store {
			return open(t, storeURL("http://127.0.0.1:1/"+account, account, testContainer, "p"), connEnv, smallTuning)
		},
	})
}

// TestConnectionStringEndpoint reaches Azurite through the connection string's
// BlobEndpoint alone, without an endpoint in the URL.
func TestConnectionStringEndpoint(t *testing.T) {
	_, account := testEnv(t)
	s := open(t, "azblob://"+account+"/"+testContainer+"/"+storetest.UniquePrefix(t), connEnv, store.Tuning{})
	defer s.Close()
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPut1GiBBoundedMemory(t *testing.T) {
	endpoint, account := testEnv(t)
	storetest.BoundedMemoryPut(t, func(t *testing.T, prefix string) store.Store {
		return open(t, storeURL(endpoint, account, testContainer, prefix), connEnv, store.Tuning{})
	}, 1<<30, 200<<20)
}
