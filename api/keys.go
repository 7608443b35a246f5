package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

// Limits of key parameters.
const (
	maxDescription = 8192
	maxTags        = 20
	maxTagKey      = 128
	maxTagValue    = 256
	maxFilters     = 10
	minRotation    = 7 * 24 * time.Hour
	maxRotation    = 730 * 24 * time.Hour
)

// keySpecs maps the symmetric KeySpecs this server creates to their
// material size.
var keySpecs = map[string]int{"Aliyun_AES_256": 32, "Aliyun_AES_128": 16}

// keyMetadata is KeyMetadata as CreateKey and DescribeKey return it.
type keyMetadata struct {
	KeyID                         string `json:"KeyId"`
	Arn                           string `json:"Arn"`
	Description                   string `json:"Description"`
	Creator                       string `json:"Creator"`
	CreatorType                   string `json:"CreatorType"`
	CreationDate                  string `json:"CreationDate"`
	KeyState                      string `json:"KeyState"`
	KeySpec                       string `json:"KeySpec"`
	KeyUsage                      string `json:"KeyUsage"`
	Origin                        string `json:"Origin"`
	ProtectionLevel               string `json:"ProtectionLevel"`
	PrimaryKeyVersion             string `json:"PrimaryKeyVersion"`
	LastRotationDate              string `json:"LastRotationDate"`
	AutomaticRotation             string `json:"AutomaticRotation"`
	RotationInterval              string `json:"RotationInterval,omitempty"`
	NextRotationDate              string `json:"NextRotationDate,omitempty"`
	DeleteDate                    string `json:"DeleteDate,omitempty"`
	MaterialExpireTime            string `json:"MaterialExpireTime"`
	DKMSInstanceID                string `json:"DKMSInstanceId,omitempty"`
	DeletionProtection            string `json:"DeletionProtection,omitempty"`
	DeletionProtectionDescription string `json:"DeletionProtectionDescription,omitempty"`
}

func (s *Server) metadata(k *fsm.Key) keyMetadata {
	m := keyMetadata{
		KeyID: k.ID, Arn: s.arn(k), Description: k.Description, Creator: k.Account, CreatorType: k.CreatorType,
		CreationDate: formatTime(k.Created), KeyState: k.State.String(), KeySpec: k.Spec, KeyUsage: k.Usage,
		Origin: k.Origin, ProtectionLevel: k.Protection, PrimaryKeyVersion: k.PrimaryVersion,
		LastRotationDate: formatTime(k.LastRotation), AutomaticRotation: "Disabled",
	}
	if k.IsServiceKey() {
		m.Creator = k.Product // the cloud product, as Alibaba Cloud KMS shows it
	}
	if k.RotationInterval > 0 {
		m.AutomaticRotation = "Enabled"
		if k.State != fsm.KeyEnabled {
			m.AutomaticRotation = "Suspended"
		}
		m.RotationInterval = strconv.FormatInt(k.RotationInterval, 10) + "s"
		m.NextRotationDate = formatTime(k.NextRotation())
	}
	if k.State == fsm.KeyPendingDeletion {
		m.DeleteDate = formatTime(k.DeleteDate)
	}
	return m
}

type keyMetadataReply struct {
	reply
	KeyMetadata keyMetadata `json:"KeyMetadata"`
}

func (s *Server) createKey(c *call) (any, error) {
	cmd := &fsm.CreateKey{Account: c.principal.account, ID: crypto.NewKeyID(), CreatorType: "User",
		VersionID: crypto.NewUUID()}
	var err error
	if cmd.Spec, err = enum(c, "KeySpec", "Aliyun_AES_256", "Aliyun_AES_256", "Aliyun_AES_128"); err != nil {
		return nil, err
	}
	if cmd.Usage, err = enum(c, "KeyUsage", "ENCRYPT/DECRYPT", "ENCRYPT/DECRYPT"); err != nil {
		return nil, err
	}
	if cmd.Origin, err = enum(c, "Origin", "Aliyun_KMS", "Aliyun_KMS", "EXTERNAL"); err != nil {
		return nil, err
	}
	if cmd.Origin == "EXTERNAL" {
		return nil, invalid("Origin", "EXTERNAL (bring your own key) is not supported yet")
	}
	if cmd.Protection, err = enum(c, "ProtectionLevel", "SOFTWARE", "SOFTWARE", "HSM"); err != nil {
		return nil, err
	}
	if cmd.Protection == "HSM" {
		return nil, invalid("ProtectionLevel", "HSM keys need a hardware KMS instance, and none is configured")
	}
	if v, _ := c.param("DKMSInstanceId"); len(v) > 0 {
		return nil, invalid("DKMSInstanceId", "no KMS instance with this id is configured")
	}
	if v, _ := c.param("Policy"); len(v) > 0 {
		return nil, invalid("Policy", "key policies are not supported; access is decided by Rego policies (docs/POLICY.md)")
	}
	if cmd.Description, err = c.text("Description", maxDescription); err != nil {
		return nil, err
	}
	if cmd.RotationInterval, err = rotationPolicy(c); err != nil {
		return nil, err
	}
	if cmd.Tags, err = tags(c); err != nil {
		return nil, err
	}
	if err := s.authorize(c, "kms:CreateKey", nil); err != nil {
		return nil, err
	}
	material := crypto.Random(keySpecs[cmd.Spec])
	cmd.Material, err = s.deps.Wrapper.Wrap(crypto.PurposeKeyMaterial, cmd.VersionID, material)
	clear(material)
	if err != nil {
		return nil, err
	}
	c.trailKeyID, c.trailVersion = cmd.ID, cmd.VersionID // the new key, in its record
	k, err := s.propose(c, cmd)
	if err != nil {
		return nil, err
	}
	return keyMetadataReply{c.reply(), s.metadata(k)}, nil
}

// enum reads a parameter that takes one of values, def when absent.
func enum(c *call, name, def string, values ...string) (string, error) {
	v, ok := c.param(name)
	if !ok || len(v) == 0 {
		return def, nil
	}
	for _, x := range values {
		if string(v) == x {
			return x, nil
		}
	}
	return "", invalid(name, "must be one of %s", strings.Join(values, ", "))
}

// rotationPolicy reads EnableAutomaticRotation and RotationInterval and
// returns the interval in seconds (0 when rotation is off).
func rotationPolicy(c *call) (int64, error) {
	on, err := c.boolean("EnableAutomaticRotation", false)
	if err != nil || !on {
		return 0, err
	}
	v, err := c.required("RotationInterval", 32)
	if err != nil {
		return 0, err
	}
	d, err := parseInterval(v)
	if err != nil || d < minRotation || d > maxRotation {
		return 0, invalid("RotationInterval", "must be a duration like 365d or 604800s between 7d and 730d")
	}
	return int64(d / time.Second), nil
}

// parseInterval parses <n>d, <n>h, <n>m or <n>s.
func parseInterval(v string) (time.Duration, error) {
	if len(v) < 2 {
		return 0, fmt.Errorf("too short")
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n <= 0 || n > 1e9 {
		return 0, fmt.Errorf("bad number")
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute, 's': time.Second}[v[len(v)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("bad unit")
	}
	return time.Duration(n) * unit, nil
}

// tags reads CreateKey's Tags: [{"TagKey":"k","TagValue":"v"}].
func tags(c *call) ([]fsm.Tag, error) {
	v, ok := c.param("Tags")
	if !ok || len(v) == 0 {
		return nil, nil
	}
	var in []struct{ TagKey, TagValue *string }
	if err := json.Unmarshal(v, &in); err != nil {
		return nil, invalid("Tags", `must be a JSON array like [{"TagKey":"k","TagValue":"v"}]`)
	}
	if len(in) > maxTags {
		return nil, invalid("Tags", "at most %d tags", maxTags)
	}
	out := make([]fsm.Tag, 0, len(in))
	seen := map[string]bool{}
	for _, t := range in {
		if t.TagKey == nil || t.TagValue == nil || *t.TagKey == "" {
			return nil, invalid("Tags", "every tag needs a non-empty TagKey and a TagValue")
		}
		k, val := *t.TagKey, *t.TagValue
		lk := strings.ToLower(k)
		switch {
		case len(k) > maxTagKey || len(val) > maxTagValue:
			return nil, invalid("Tags", "tag keys are at most %d bytes and values %d", maxTagKey, maxTagValue)
		case strings.HasPrefix(lk, "aliyun") || strings.HasPrefix(lk, "acs:"):
			return nil, invalid("Tags", "tag keys may not start with aliyun or acs:")
		case seen[k]:
			return nil, invalid("Tags", "tag key %q given twice", k)
		}
		seen[k] = true
		out = append(out, fsm.Tag{Key: k, Value: val})
	}
	return out, nil
}

func (s *Server) describeKey(c *call) (any, error) {
	k, err := s.lookupKey(c, "KeyId")
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "kms:DescribeKey", k); err != nil {
		return nil, err
	}
	m := s.metadata(k)
	m.DeletionProtection = "Disabled"
	if k.DeletionProtection {
		m.DeletionProtection = "Enabled"
		m.DeletionProtectionDescription = k.DeletionProtectionDescription
	}
	return keyMetadataReply{c.reply(), m}, nil
}

type keyEntry struct {
	KeyID  string `json:"KeyId"`
	KeyArn string `json:"KeyArn"`
}

type listKeysReply struct {
	reply
	paging
	Keys struct {
		Key []keyEntry `json:"Key"`
	} `json:"Keys"`
}

// paging is the page part of list responses.
type paging struct {
	PageNumber int64 `json:"PageNumber"`
	PageSize   int64 `json:"PageSize"`
	TotalCount int64 `json:"TotalCount"`
}

func readPaging(c *call) (paging, error) {
	var p paging
	var err error
	if p.PageNumber, err = c.integer("PageNumber", 1, 1<<31-1, 1); err != nil {
		return p, err
	}
	p.PageSize, err = c.integer("PageSize", 1, 100, 10)
	return p, err
}

// window reports whether the i-th match (0-based) falls on the page.
func (p paging) window(i int64) bool {
	return i >= (p.PageNumber-1)*p.PageSize && i < p.PageNumber*p.PageSize
}

// keyFilter is ListKeys's Filters: keys are ANDed, values ORed.
type keyFilter map[string][]string

var filterKeys = map[string]func(*fsm.Key) string{
	"KeyState":        func(k *fsm.Key) string { return k.State.String() },
	"KeySpec":         func(k *fsm.Key) string { return k.Spec },
	"KeyUsage":        func(k *fsm.Key) string { return k.Usage },
	"ProtectionLevel": func(k *fsm.Key) string { return k.Protection },
	"CreatorType":     func(k *fsm.Key) string { return k.CreatorType },
}

func readFilters(c *call) (keyFilter, error) {
	v, ok := c.param("Filters")
	if !ok || len(v) == 0 {
		return nil, nil
	}
	var in []struct {
		Key    string
		Values []string
	}
	if err := json.Unmarshal(v, &in); err != nil {
		return nil, invalid("Filters", `must be a JSON array like [{"Key":"KeyState","Values":["Enabled"]}]`)
	}
	if len(in) > maxFilters {
		return nil, invalid("Filters", "at most %d filters", maxFilters)
	}
	f := keyFilter{}
	for _, x := range in {
		if filterKeys[x.Key] == nil {
			return nil, invalid("Filters", "unknown filter key %q (use KeyState, KeySpec, KeyUsage, ProtectionLevel or CreatorType)", x.Key)
		}
		if len(x.Values) == 0 || len(x.Values) > 10 {
			return nil, invalid("Filters", "filter %q needs 1 to 10 values", x.Key)
		}
		f[x.Key] = append(f[x.Key], x.Values...)
	}
	return f, nil
}

func (f keyFilter) match(k *fsm.Key) bool {
	for key, values := range f {
		v := filterKeys[key](k)
		found := false
		for _, x := range values {
			found = found || x == v
		}
		if !found {
			return false
		}
	}
	return true
}

func (s *Server) listKeys(c *call) (any, error) {
	p, err := readPaging(c)
	if err != nil {
		return nil, err
	}
	f, err := readFilters(c)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "kms:ListKeys", nil); err != nil {
		return nil, err
	}
	out := listKeysReply{reply: c.reply(), paging: p}
	out.Keys.Key = []keyEntry{}
	now := c.now.UnixNano()
	s.deps.State.State().Keys(c.principal.account, "", func(k *fsm.Key) bool {
		if k.Gone(now) || !f.match(k) {
			return true
		}
		if p.window(out.TotalCount) {
			out.Keys.Key = append(out.Keys.Key, keyEntry{KeyID: k.ID, KeyArn: s.arn(k)})
		}
		out.TotalCount++
		return true
	})
	return out, nil
}

// keyWrite is the shape of the key actions that change one key and return
// nothing but a RequestId: resolve it, authorise, propose.
func (s *Server) keyWrite(c *call, action, param string, read func(ref string) (fsm.Command, error)) (any, error) {
	ref, err := s.keyRef(c, param)
	if err != nil {
		return nil, err
	}
	cmd, err := read(ref)
	if err != nil {
		return nil, err
	}
	k, err := s.resolveKey(c, s.deps.State.State(), ref, nil)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, action, k); err != nil {
		return nil, err
	}
	if _, err := s.propose(c, cmd); err != nil {
		return nil, err
	}
	return c.reply(), nil
}

func (s *Server) updateKeyDescription(c *call) (any, error) {
	return s.keyWrite(c, "kms:UpdateKeyDescription", "KeyId", func(ref string) (fsm.Command, error) {
		if _, ok := c.param("Description"); !ok {
			return nil, missing("Description")
		}
		d, err := c.text("Description", maxDescription)
		return &fsm.UpdateKeyDescription{Account: c.principal.account, KeyRef: ref, Description: d}, err
	})
}

func (s *Server) enableKey(c *call) (any, error) {
	return s.keyWrite(c, "kms:EnableKey", "KeyId", func(ref string) (fsm.Command, error) {
		return fsm.NewEnableKey(c.principal.account, ref), nil
	})
}

func (s *Server) disableKey(c *call) (any, error) {
	return s.keyWrite(c, "kms:DisableKey", "KeyId", func(ref string) (fsm.Command, error) {
		return fsm.NewDisableKey(c.principal.account, ref), nil
	})
}

func (s *Server) scheduleKeyDeletion(c *call) (any, error) {
	return s.keyWrite(c, "kms:ScheduleKeyDeletion", "KeyId", func(ref string) (fsm.Command, error) {
		if _, ok := c.param("PendingWindowInDays"); !ok {
			return nil, missing("PendingWindowInDays")
		}
		days, err := c.integer("PendingWindowInDays", fsm.MinPendingDays, fsm.MaxPendingDays, 0)
		return &fsm.ScheduleKeyDeletion{Account: c.principal.account, KeyRef: ref, PendingDays: days}, err
	})
}

func (s *Server) cancelKeyDeletion(c *call) (any, error) {
	return s.keyWrite(c, "kms:CancelKeyDeletion", "KeyId", func(ref string) (fsm.Command, error) {
		return fsm.NewCancelKeyDeletion(c.principal.account, ref), nil
	})
}

// setDeletionProtection names its key by ProtectedResourceArn (or, as the
// newer API allows, KeyId).
func (s *Server) setDeletionProtection(c *call) (any, error) {
	param := "ProtectedResourceArn"
	if _, ok := c.param(param); !ok {
		if _, ok := c.param("KeyId"); ok {
			param = "KeyId"
		}
	}
	return s.keyWrite(c, "kms:SetDeletionProtection", param, func(ref string) (fsm.Command, error) {
		if _, ok := c.param("EnableDeletionProtection"); !ok {
			return nil, missing("EnableDeletionProtection")
		}
		enable, err := c.boolean("EnableDeletionProtection", false)
		if err != nil {
			return nil, err
		}
		desc, err := c.text("DeletionProtectionDescription", maxDescription)
		return &fsm.SetDeletionProtection{Account: c.principal.account, KeyRef: ref, Enable: enable, Description: desc}, err
	})
}
