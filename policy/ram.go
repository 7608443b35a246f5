package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// MaxDocumentBytes bounds a RAM-style policy document.
const MaxDocumentBytes = 6144

// ErrDocument is returned (wrapped, with the reason) for a policy document
// the evaluator would not understand.
var ErrDocument = errors.New("policy: invalid policy document")

// statement is one statement of a RAM-style document. Action, Resource and
// condition values may each be a string or a list of strings.
type statement struct {
	Effect    string
	Action    json.RawMessage
	Resource  json.RawMessage
	Condition map[string]map[string]json.RawMessage
}

type document struct {
	Version   string
	Statement []statement
}

// operators are the condition operators the evaluator knows, with the
// check their values must pass.
var operators = map[string]func(string) error{
	"StringEquals": nil, "StringNotEquals": nil, "StringEqualsIgnoreCase": nil, "StringLike": nil, "StringNotLike": nil,
	"IpAddress": checkIP, "NotIpAddress": checkIP,
	"DateGreaterThan": checkTime, "DateLessThan": checkTime,
	"Bool": checkBool,
}

// contextKeys are the condition keys that read the request context; a
// policy using them is evaluated per request context (docs/POLICY.md).
var contextKeys = map[string]bool{"acs:SourceIp": true, "acs:CurrentTime": true, "acs:SecureTransport": true}

func checkIP(v string) error {
	if strings.Contains(v, "/") {
		_, err := netip.ParsePrefix(v)
		return err
	}
	_, err := netip.ParseAddr(v)
	return err
}

func checkTime(v string) error { _, err := time.Parse(time.RFC3339, v); return err }

func checkBool(v string) error {
	if v != "true" && v != "false" {
		return errors.New("not true or false")
	}
	return nil
}

// strs reads a JSON string or list of strings.
func strs(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil || len(many) == 0 {
		return nil, errors.New("must be a string or a non-empty list of strings")
	}
	return many, nil
}

// ParseDocument checks a RAM-style policy document and returns it as the
// evaluator reads it, and whether its conditions read the request context.
func ParseDocument(text string) (doc map[string]any, readsContext bool, err error) {
	bad := func(format string, args ...any) (map[string]any, bool, error) {
		return nil, false, fmt.Errorf("%w: %s", ErrDocument, fmt.Sprintf(format, args...))
	}
	if len(text) > MaxDocumentBytes {
		return bad("longer than %d bytes", MaxDocumentBytes)
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	var d document
	if err := dec.Decode(&d); err != nil {
		return bad("%v", err)
	}
	if d.Version != "" && d.Version != "1" {
		return bad(`Version must be "1"`)
	}
	if len(d.Statement) == 0 {
		return bad("no Statement")
	}
	for i, st := range d.Statement {
		if st.Effect != "Allow" && st.Effect != "Deny" {
			return bad("statement %d: Effect must be Allow or Deny", i+1)
		}
		actions, err := strs(st.Action)
		if err != nil {
			return bad("statement %d: Action %v", i+1, err)
		}
		for _, a := range actions {
			if !strings.Contains(a, ":") && a != "*" {
				return bad("statement %d: action %q is not like kms:Encrypt", i+1, a)
			}
		}
		if st.Resource != nil {
			if _, err := strs(st.Resource); err != nil {
				return bad("statement %d: Resource %v", i+1, err)
			}
		}
		for op, keys := range st.Condition {
			check, known := operators[op]
			if !known {
				return bad("statement %d: unknown condition operator %q", i+1, op)
			}
			for k, raw := range keys {
				if !contextKeys[k] && !strings.HasPrefix(k, "kms:tag/") && !strings.HasPrefix(k, "kms:EncryptionContext/") {
					return bad("statement %d: unknown condition key %q (use acs:SourceIp, acs:CurrentTime, acs:SecureTransport, kms:tag/<key> or kms:EncryptionContext/<key>)", i+1, k)
				}
				vals, err := strs(raw)
				if err != nil {
					return bad("statement %d: %s %s %v", i+1, op, k, err)
				}
				for _, v := range vals {
					if check != nil {
						if err := check(v); err != nil {
							return bad("statement %d: %s %s value %q: %v", i+1, op, k, v, err)
						}
					}
				}
				readsContext = readsContext || contextKeys[k] || strings.HasPrefix(k, "kms:EncryptionContext/")
			}
		}
	}
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		return bad("%v", err)
	}
	return doc, readsContext, nil
}
