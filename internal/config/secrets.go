package config

import (
	"errors"
	"net/url"
	"strings"
)

// Credentials never go in URLs (DESIGN section 7): a location URL appears in workflow
// inputs, logs, `policy validate` output and error messages, so a secret in it would
// end up in Temporal histories. The config refuses every URL that carries one and
// names the credential reference to use instead. This file holds that check and the
// redaction every message of this package applies before quoting a location URL.

// sasParams are the query parameters of an Azure shared access signature. sig is the
// secret itself; the others are its signed fields, refused too because a URL with
// them is a pasted SAS URL whose signature is one copy-paste away.
var sasParams = []string{"sig", "sv", "ss", "srt", "sp", "se", "st", "spr", "sr", "si", "sip", "sdd",
	"skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid", "ses"}

// tokenParams are query parameters that carry a credential on other clouds: a GCS
// OAuth token, the parts of AWS and GCS presigned URLs and of AWS temporary
// credentials. Compared case-insensitively, as the services do for presigned URLs.
var tokenParams = map[string]string{
	"access_token":         "a GCS OAuth access token",
	"x-amz-security-token": "an AWS session token",
	"x-amz-credential":     "an AWS presigned-URL credential",
	"x-amz-signature":      "an AWS presigned-URL signature",
	"x-goog-credential":    "a GCS signed-URL credential",
	"x-goog-signature":     "a GCS signed-URL signature",
}

// maxEndpointDepth bounds how deep endpoint parameters nested in endpoint parameters
// are checked; a real config has one level.
const maxEndpointDepth = 4

// redact returns scheme://host/path of a location URL: never its user information,
// query or fragment, where credentials would be. A value that does not parse is
// replaced entirely, since any part of it could be a secret.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL, not shown)"
	}
	return redactURL(u)
}

func redactURL(u *url.URL) string {
	if u.Opaque != "" {
		// scheme:opaque has no host or path to show, and opaque text may be a secret.
		return u.Scheme + ":(not shown)"
	}
	// Built by hand rather than with url.URL.String, which drops the "//" of a URL
	// without a host ("s3://" would print as "s3:").
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// parseError is url.Parse's complaint without the URL it quotes.
func parseError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "malformed"
}

// credentialRef is the config field that references the secret of a location with
// this scheme, for hints.
func credentialRef(scheme string) string {
	switch scheme {
	case "s3":
		return "aws_profile"
	case "gs":
		return "gcp_credentials_file"
	case "azblob":
		return "azure_connection_string_env"
	}
	return "aws_profile, gcp_credentials_file or azure_connection_string_env"
}

// secretInURL reports what credential u carries, if any: in its user information, in
// a query parameter, or in the same places of the URL of its endpoint parameter.
func secretInURL(u *url.URL, depth int) (what string, found bool) {
	if u.User != nil {
		name := u.User.Username()
		_, hasPassword := u.User.Password()
		switch {
		case strings.HasPrefix(name, "AKIA") || strings.HasPrefix(name, "ASIA"):
			return "an AWS access key in the user information", true
		case hasPassword:
			return "a password in the user information", true
		default:
			return "a user name in the user information", true
		}
	}
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		for _, p := range sasParams {
			if lk == p {
				return "an Azure SAS token (parameter " + p + ")", true
			}
		}
		if desc, ok := tokenParams[lk]; ok {
			return desc + " (parameter " + k + ")", true
		}
	}
	if depth < maxEndpointDepth {
		for _, ep := range q["endpoint"] {
			eu, err := url.Parse(ep)
			if err != nil {
				// Reported by the location check, without its text.
				continue
			}
			if what, found := secretInURL(eu, depth+1); found {
				return what + " in its endpoint parameter", true
			}
		}
	}
	return "", false
}
