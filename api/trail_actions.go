package api

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/trail"
)

// Limits of trail queries.
const (
	maxLookupPage = 100
	// maxLookupScan bounds the records one LookupEvents call reads; a call
	// that reaches it returns what it found with a NextToken to go on.
	maxLookupScan = 200000
)

// lookupFilter is LookupEvents' parameters.
type lookupFilter struct {
	account, keyID, user, event string
	outcome                     trail.Outcome
	start, end                  int64
}

func (f *lookupFilter) match(r *trail.Record) bool {
	return (f.account == "" || r.Account == f.account) &&
		(f.keyID == "" || r.KeyID == f.keyID) &&
		(f.user == "" || r.PrincipalType == "user" && r.PrincipalName == f.user) &&
		(f.event == "" || r.EventName == f.event) &&
		(f.outcome == 0 || r.Outcome == f.outcome) &&
		r.Time >= f.start && r.Time <= f.end
}

// lookupEvents answers who did what: the records of the caller's account
// (the system root may name any account, or none for all), newest first,
// filtered, a page at a time.
func (s *Server) lookupEvents(c *call) (any, error) {
	f := lookupFilter{account: c.principal.account, start: math.MinInt64, end: math.MaxInt64}
	var err error
	if f.keyID, err = s.lookupKeyFilter(c); err != nil {
		return nil, err
	}
	if f.user, err = c.text("UserName", maxNameLen); err != nil {
		return nil, err
	}
	if f.event, err = c.text("EventName", 64); err != nil {
		return nil, err
	}
	if o, err := c.text("Outcome", 16); err != nil {
		return nil, err
	} else if o != "" {
		var ok bool
		if f.outcome, ok = trail.ParseOutcome(o); !ok {
			return nil, invalid("Outcome", "must be success, denied or failed")
		}
	}
	for _, t := range []struct {
		name string
		to   *int64
	}{{"StartTime", &f.start}, {"EndTime", &f.end}} {
		v, err := c.text(t.name, 64)
		if err != nil {
			return nil, err
		}
		if v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, invalid(t.name, "not a time like 2026-11-29T10:00:00Z")
			}
			*t.to = at.UnixNano()
		}
	}
	if f.start > f.end {
		return nil, invalid("EndTime", "is before StartTime")
	}
	size, err := c.integer("PageSize", 1, maxLookupPage, 20)
	if err != nil {
		return nil, err
	}
	before := uint64(math.MaxUint64)
	if tok, err := c.text("NextToken", 32); err != nil {
		return nil, err
	} else if tok != "" {
		if before, err = strconv.ParseUint(tok, 10, 64); err != nil || before == 0 {
			return nil, invalid("NextToken", "not a token LookupEvents returned")
		}
		before--
	}
	if acct, err := c.text("AccountId", maxNameLen); err != nil {
		return nil, err
	} else if acct != "" && acct != c.principal.account {
		if !c.principal.system {
			return nil, &DeniedError{Reasons: []string{"only the system account's root reads other accounts' events"}}
		}
		f.account = acct
	} else if c.principal.system && acct == "" && c.principal.kind == fsm.PrincipalRoot {
		f.account = "" // the system root sees every account unless it names one
	}
	if err := s.authorize(c, "trail:LookupEvents", nil); err != nil {
		return nil, err
	}
	if err := s.settleTrail(); err != nil {
		return nil, err
	}

	out := struct {
		reply
		Events    []*trail.Record `json:"Events"`
		NextToken string          `json:"NextToken,omitempty"`
	}{reply: c.reply(), Events: []*trail.Record{}}
	scanned := 0
	var last uint64
	var scanErr error
	visit := func(sl trail.Sealed) bool {
		scanned++
		last = sl.Seq
		r, err := sl.Decode()
		if err != nil {
			scanErr = err
			return false
		}
		if f.match(&r) {
			out.Events = append(out.Events, &r)
		}
		return len(out.Events) < int(size) && scanned < maxLookupScan
	}
	more := s.trailBackward(before, f.start, f.end, visit)
	if scanErr != nil {
		return nil, scanErr
	}
	if more && last > 1 {
		out.NextToken = strconv.FormatUint(last, 10)
	}
	return out, nil
}

// lookupKeyFilter reads LookupEvents' KeyId: a key id, or an alias or ARN
// of a key of the caller's account.
func (s *Server) lookupKeyFilter(c *call) (string, error) {
	if _, ok := c.param("KeyId"); !ok {
		return "", nil
	}
	ref, err := s.keyRef(c, "KeyId")
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(ref, fsm.AliasPrefix) {
		k, err := s.deps.State.State().ResolveKey(c.principal.account, ref)
		if err != nil {
			return "", err
		}
		return k.ID, nil
	}
	return strings.Clone(ref), nil
}

// trailBackward visits the records with seq ≤ before, newest first: those
// the archive does not hold yet from the state's window, then the archive.
// It reports whether fn stopped the walk before the oldest record.
func (s *Server) trailBackward(before uint64, minTime, maxTime int64, fn func(trail.Sealed) bool) bool {
	const skew = int64(time.Minute) // event times may run ahead of commit times by the nodes' clock skew
	archived, _ := s.deps.Trail.Last()
	stopped := false
	s.deps.State.State().TrailRecordsBackward(before, func(sl trail.Sealed) bool {
		if sl.Seq <= archived {
			return false
		}
		stopped = !fn(sl)
		return !stopped
	})
	if stopped {
		return true
	}
	if err := s.deps.Trail.ScanBackward(min(before, archived), saturatingAdd(minTime, -skew), saturatingAdd(maxTime, skew), func(sl trail.Sealed) bool {
		stopped = !fn(sl)
		return !stopped
	}); err != nil {
		s.log.Error("reading the trail's segment files failed", "err", err)
	}
	return stopped
}

// saturatingAdd is a+b clamped to the int64 range.
func saturatingAdd(a, b int64) int64 {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}

// settleTrail waits, for at most the write timeout, until the records this
// node journaled so far are in the trail it reads.
func (s *Server) settleTrail() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	if err := s.recorder.settle(ctx); err != nil {
		return ErrTrailBehind
	}
	return nil
}

// exportTrail streams the whole trail this node holds (or from StartSeq)
// as JSON lines, one record a line with its hash fields, up to the newest
// record when the export starts; the x-raftkms-trail-last header names
// that record, so a client can tell a complete export from a cut one.
func (s *Server) exportTrail(c *call) (any, error) {
	from, err := c.integer("StartSeq", 1, math.MaxInt64, 1)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "cluster:ExportTrail", nil); err != nil {
		return nil, err
	}
	if err := s.settleTrail(); err != nil {
		return nil, err
	}
	st := s.deps.State.State()
	last, _ := st.TrailHead()
	c.setHeaders("application/x-ndjson")
	c.ctx.Response.Header.Set("x-raftkms-trail-last", strconv.FormatUint(last, 10))
	c.ctx.Response.Header.Set("x-raftkms-node", s.cfg.NodeID)
	archive, log := s.deps.Trail, s.log
	c.ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		next := uint64(from)
		write := func(sl trail.Sealed) bool {
			r, err := sl.Decode()
			if err != nil {
				// A record that no longer decodes: export what is there as
				// far as it goes; verification names the gap.
				log.Error("a trail record in the segment files does not decode", "seq", sl.Seq, "err", err)
				return false
			}
			b, _ := json.Marshal(&r)
			w.Write(b)
			w.WriteByte('\n')
			next = sl.Seq + 1
			return true
		}
		if err := archive.Scan(next, last, write); err != nil {
			log.Error("trail export failed", "err", err)
			return
		}
		// Records applied but not archived yet, or that the archive lacks.
		st.TrailRecords(next, func(sl trail.Sealed) bool { return sl.Seq <= last && write(sl) })
	})
	return streamed{}, nil
}
