package trail

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// jsonRecord is a record as exports and LookupEvents show it.
type jsonRecord struct {
	Seq               uint64            `json:"Seq"`
	EventID           string            `json:"EventId"`
	EventTime         string            `json:"EventTime"`
	EventName         string            `json:"EventName"`
	CommitTime        string            `json:"CommitTime"`
	AccountID         string            `json:"AccountId"`
	PrincipalType     string            `json:"PrincipalType"`
	PrincipalName     string            `json:"PrincipalName,omitempty"`
	AccessKeyID       string            `json:"AccessKeyId"`
	SourceIP          string            `json:"SourceIp"`
	UserAgent         string            `json:"UserAgent,omitempty"`
	RequestID         string            `json:"RequestId"`
	Node              string            `json:"Node"`
	KeyID             string            `json:"KeyId,omitempty"`
	KeyVersionID      string            `json:"KeyVersionId,omitempty"`
	ResourceARN       string            `json:"ResourceArn,omitempty"`
	Outcome           string            `json:"Outcome"`
	ErrorCode         string            `json:"ErrorCode,omitempty"`
	RequestParameters map[string]string `json:"RequestParameters"`
	PrevHash          string            `json:"PrevHash"`
	Hash              string            `json:"Hash"`
}

// timeLayout keeps every nanosecond, so a time reads back exactly.
const timeLayout = time.RFC3339Nano

// MarshalJSON renders r as one object of an export.
func (r *Record) MarshalJSON() ([]byte, error) {
	j := jsonRecord{
		Seq: r.Seq, EventID: r.EventID, EventTime: formatNS(r.Time), EventName: r.EventName, CommitTime: formatNS(r.CommitTime),
		AccountID: r.Account, PrincipalType: r.PrincipalType, PrincipalName: r.PrincipalName, AccessKeyID: r.AccessKeyID,
		SourceIP: r.SourceIP, UserAgent: r.UserAgent, RequestID: r.RequestID, Node: r.Node,
		KeyID: r.KeyID, KeyVersionID: r.KeyVersionID, ResourceARN: r.ResourceARN,
		Outcome: r.Outcome.String(), ErrorCode: r.ErrorCode, RequestParameters: make(map[string]string, len(r.Params)),
		PrevHash: hex.EncodeToString(r.PrevHash[:]), Hash: hex.EncodeToString(r.Hash[:]),
	}
	for _, p := range r.Params {
		j.RequestParameters[p.Name] = p.Value
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote, refusing unknown fields.
func (r *Record) UnmarshalJSON(b []byte) error {
	var j jsonRecord
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return err
	}
	var err error
	*r = Record{Seq: j.Seq, Event: Event{EventID: j.EventID, EventName: j.EventName,
		Account: j.AccountID, PrincipalType: j.PrincipalType, PrincipalName: j.PrincipalName, AccessKeyID: j.AccessKeyID,
		SourceIP: j.SourceIP, UserAgent: j.UserAgent, RequestID: j.RequestID, Node: j.Node,
		KeyID: j.KeyID, KeyVersionID: j.KeyVersionID, ResourceARN: j.ResourceARN, ErrorCode: j.ErrorCode}}
	if r.Time, err = parseNS("EventTime", j.EventTime); err != nil {
		return err
	}
	if r.CommitTime, err = parseNS("CommitTime", j.CommitTime); err != nil {
		return err
	}
	var ok bool
	if r.Outcome, ok = ParseOutcome(j.Outcome); !ok {
		return fmt.Errorf("Outcome %q is not success, denied or failed", j.Outcome)
	}
	for _, name := range slices.Sorted(maps.Keys(j.RequestParameters)) {
		r.Params = append(r.Params, Param{name, j.RequestParameters[name]})
	}
	if err := parseHash("PrevHash", j.PrevHash, &r.PrevHash); err != nil {
		return err
	}
	return parseHash("Hash", j.Hash, &r.Hash)
}

func formatNS(ns int64) string { return time.Unix(0, ns).UTC().Format(timeLayout) }

// parseNS reads a time exactly as formatNS writes it (UTC, every
// nanosecond, within the int64 nanosecond range): any other spelling of a
// time would let an edited line read back as the original.
func parseNS(field, s string) (int64, error) {
	t, err := time.Parse(timeLayout, s)
	if err == nil && formatNS(t.UnixNano()) == s {
		return t.UnixNano(), nil
	}
	return 0, fmt.Errorf("%s %q is not a UTC RFC 3339 time as exports write it", field, s)
}

func parseHash(field, s string, h *[32]byte) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return fmt.Errorf("%s %q is not a hex SHA-256", field, s)
	}
	copy(h[:], b)
	return nil
}

// BadRecordError names the first record a verification rejects.
type BadRecordError struct {
	Line   int    // line of the export (0 when not reading an export)
	Seq    uint64 // the record's seq, or the seq expected where one is missing
	Reason string
}

func (e *BadRecordError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d, seq %d: %s", e.Line, e.Seq, e.Reason)
	}
	return fmt.Sprintf("seq %d: %s", e.Seq, e.Reason)
}

// Verifier checks records, in order, against the chain: each record's
// hash covers its content, links to the previous record's hash, and has
// the next seq.
type Verifier struct {
	Count      uint64   // records checked
	First      uint64   // seq of the first record
	FirstPrev  [32]byte // its PrevHash: the anchor of a trail that does not start at seq 1
	Last       uint64
	LastHash   [32]byte
	lineNumber int
}

// Add checks the next record.
func (v *Verifier) Add(r *Record) error {
	v.lineNumber++
	bad := func(seq uint64, format string, args ...any) error {
		return &BadRecordError{Line: v.lineNumber, Seq: seq, Reason: fmt.Sprintf(format, args...)}
	}
	if r.ComputeHash() != r.Hash {
		return bad(r.Seq, "the record's content does not match its hash: it was changed")
	}
	if r.Seq == 0 {
		return bad(0, "seq 0: records are numbered from 1")
	}
	if v.Count == 0 {
		if r.Seq == 1 && r.PrevHash != ([32]byte{}) {
			return bad(r.Seq, "the first record of the trail must have an all-zero PrevHash")
		}
		v.First, v.FirstPrev = r.Seq, r.PrevHash
	} else {
		switch {
		case r.Seq == v.Last:
			return bad(r.Seq, "seq %d appears twice", r.Seq)
		case r.Seq < v.Last:
			return bad(r.Seq, "seq %d follows seq %d: records are out of order", r.Seq, v.Last)
		case r.Seq > v.Last+1:
			return bad(v.Last+1, "records %d to %d are missing", v.Last+1, r.Seq-1)
		case r.PrevHash != v.LastHash:
			return bad(r.Seq, "PrevHash is not the hash of record %d: a record was replaced or the chain rebuilt", v.Last)
		}
	}
	v.Count++
	v.Last, v.LastHash = r.Seq, r.Hash
	return nil
}

// VerifyExport reads an export (JSON lines) from rd and verifies it whole.
// It returns the verifier's summary, or a *BadRecordError naming the first
// bad record (a line that is not a record is bad too).
func VerifyExport(rd io.Reader) (*Verifier, error) {
	v := &Verifier{}
	sc := bufio.NewScanner(rd)
	// JSON may spell a byte of an event as a six-byte \u escape.
	sc.Buffer(make([]byte, 0, 64<<10), 6*MaxEventBytes+64<<10)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes()) // a CRLF file, stray blanks

		if len(line) == 0 {
			v.lineNumber++
			return v, &BadRecordError{Line: v.lineNumber, Seq: v.Last + 1, Reason: "an empty line"}
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			v.lineNumber++
			return v, &BadRecordError{Line: v.lineNumber, Seq: v.Last + 1, Reason: "not a record: " + err.Error()}
		}
		// Exactly as the export wrote it: JSON readers disagree about a key
		// given twice, or in another case, so such a line could show one
		// thing to a person and verify as another.
		if canon, err := r.MarshalJSON(); err != nil || !bytes.Equal(canon, line) {
			v.lineNumber++
			return v, &BadRecordError{Line: v.lineNumber, Seq: r.Seq, Reason: "the line is not a record as exports write it (a key repeated, reordered or respelled)"}
		}
		if err := v.Add(&r); err != nil {
			return v, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return v, &BadRecordError{Line: v.lineNumber + 1, Seq: v.Last + 1, Reason: "a line longer than any record"}
		}
		return v, err
	}
	return v, nil
}
