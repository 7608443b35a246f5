package api

import (
	"context"
	"encoding/base64"
	"errors"
	"unicode/utf8"

	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

// Limits of the cryptographic actions.
const (
	maxPlaintext  = 6 << 10 // Encrypt's Plaintext, bytes
	maxBlobText   = 16 << 10
	maxDataKeyLen = 1024
)

// The fast-path replies live in the pooled call and write their own JSON;
// their strings may view call buffers.

type cipherReply struct {
	reply
	KeyID          string `json:"KeyId"`
	KeyVersionID   string `json:"KeyVersionId"`
	CiphertextBlob string `json:"CiphertextBlob"`
}

func (r *cipherReply) appendJSON(b []byte) []byte {
	return appendObject(b, "RequestId", r.RequestID, "KeyId", r.KeyID, "KeyVersionId", r.KeyVersionID,
		"CiphertextBlob", r.CiphertextBlob)
}

type dataKeyReply struct {
	reply
	KeyID          string `json:"KeyId"`
	KeyVersionID   string `json:"KeyVersionId"`
	CiphertextBlob string `json:"CiphertextBlob"`
	Plaintext      string `json:"Plaintext"`
}

func (r *dataKeyReply) appendJSON(b []byte) []byte {
	return appendObject(b, "RequestId", r.RequestID, "KeyId", r.KeyID, "KeyVersionId", r.KeyVersionID,
		"CiphertextBlob", r.CiphertextBlob, "Plaintext", r.Plaintext)
}

type decryptReply struct {
	reply
	KeyID        string `json:"KeyId"`
	KeyVersionID string `json:"KeyVersionId"`
	Plaintext    string `json:"Plaintext"`
}

func (r *decryptReply) appendJSON(b []byte) []byte {
	return appendObject(b, "RequestId", r.RequestID, "KeyId", r.KeyID, "KeyVersionId", r.KeyVersionID,
		"Plaintext", r.Plaintext)
}

// seal encrypts plaintext under the primary version of k and returns the
// version id and the CiphertextBlob text.
func (s *Server) seal(c *call, k *fsm.Key, plaintext []byte, ec crypto.Context) (string, string, error) {
	v := k.Primary()
	if v == nil {
		return "", "", fsm.ErrKeyNotFound
	}
	vk, b, err := s.deps.Keyring.Software(v.ID, v.Material)
	if err != nil {
		return "", "", err
	}
	ok, reserve := vk.TakeSeal()
	if reserve {
		s.reserver.add(reservation{account: k.Account, keyID: k.ID, versionID: v.ID, b: vk})
	}
	if !ok {
		if vk.Exhausted() {
			return "", "", fsm.ErrSealLimit
		}
		return "", "", ErrSealBudget
	}
	c.aad = ec.AppendAAD(c.aad[:0])
	raw, err := b.Seal(append(c.blob[:0], v.ID...), plaintext, c.aad)
	if err != nil {
		return "", "", err
	}
	c.blob = raw
	c.blobText = base64.StdEncoding.AppendEncode(c.blobText[:0], raw)
	return v.ID, bstr(c.blobText), nil
}

// createServiceKey makes, on a service principal's first use of
// alias/acs/<product>, its account's service key. Concurrent first uses
// (on several nodes) propose one each; the state machine keeps the first
// and hands it to the others.
func (s *Server) createServiceKey(c *call) (*fsm.Key, error) {
	vid := crypto.NewUUID()
	material := crypto.Random(keySpecs["Aliyun_AES_256"])
	wrapped, err := s.deps.Wrapper.Wrap(crypto.PurposeKeyMaterial, vid, material)
	clear(material)
	if err != nil {
		return nil, err
	}
	// A side effect of the request, not its own change: the request is
	// recorded with its outcome when it ends (docs/TRAIL.md).
	return s.proposeSystemKey(context.Background(), &fsm.CreateServiceKey{Account: c.principal.account,
		Product: c.principal.name, KeyID: crypto.NewKeyID(), VersionID: vid, Material: wrapped})
}

// opened is a decrypted CiphertextBlob.
type opened struct {
	key     *fsm.Key
	version *fsm.Version
	sealed  []byte // IV ‖ ciphertext ‖ tag, aliasing c.blob
}

// parseBlob reads a CiphertextBlob parameter and finds the key version it
// was made with, in the caller's account.
func (s *Server) parseBlob(c *call, st *fsm.State, name string) (opened, error) {
	text, err := c.view(name, maxBlobText)
	if err != nil {
		return opened{}, err
	}
	raw, err := base64.StdEncoding.AppendDecode(c.blob[:0], sbytes(text))
	if err != nil {
		return opened{}, invalid(name, "not valid base64")
	}
	c.blob = raw
	vid, sealed, err := crypto.SplitBlob(raw)
	if err != nil {
		return opened{}, err
	}
	v, k := &c.blobVersion, &c.blobKey
	if !st.VersionInto(bstr(vid), v) {
		return opened{}, fsm.ErrKeyNotFound
	}
	if !st.KeyWithoutPrimaryInto(c.principal.account, v.KeyID, k) || k.Gone(c.now.UnixNano()) {
		return opened{}, fsm.ErrKeyNotFound
	}
	return opened{key: k, version: v, sealed: sealed}, nil
}

// open decrypts o into c.plain.
func (s *Server) open(c *call, o opened, ec crypto.Context) ([]byte, error) {
	_, b, err := s.deps.Keyring.Software(o.version.ID, o.version.Material)
	if err != nil {
		return nil, err
	}
	c.aad = ec.AppendAAD(c.aad[:0])
	pt, err := b.Open(c.plain[:0], o.sealed, c.aad)
	if err != nil {
		return nil, err
	}
	c.plain = pt
	return pt, nil
}

// cryptoKey reads KeyId and EncryptionContext, then resolves, authorises
// and state-checks the key for action; with DryRun it stops there.
func (s *Server) cryptoKey(c *call, st *fsm.State, action string) (*fsm.Key, crypto.Context, error) {
	ref, err := s.keyRef(c, "KeyId")
	if err != nil {
		return nil, crypto.Context{}, err
	}
	ec, err := encryptionContext(c, "EncryptionContext")
	if err != nil {
		return nil, ec, err
	}
	dry, err := c.dryRun()
	if err != nil {
		return nil, ec, err
	}
	k, err := s.resolveKey(c, st, ref, &c.key)
	if errors.Is(err, fsm.ErrAliasNotFound) && c.principal.kind == fsm.PrincipalService && ref == fsm.ServiceAliasPrefix+c.principal.name {
		k, err = s.createServiceKey(c)
	}
	if err != nil {
		return nil, ec, err
	}
	c.authContext = ec
	if err := s.authorize(c, action, k); err != nil {
		return nil, ec, err
	}
	if err := usable(k); err != nil {
		return nil, ec, err
	}
	if dry {
		return nil, ec, ErrDryRun
	}
	return k, ec, nil
}

func (s *Server) encrypt(c *call) (any, error) {
	pt, ok := c.param("Plaintext")
	switch {
	case !ok || len(pt) == 0:
		return nil, missing("Plaintext")
	case len(pt) > maxPlaintext:
		return nil, invalid("Plaintext", "longer than %d bytes", maxPlaintext)
	case !utf8.Valid(pt):
		return nil, invalid("Plaintext", "not valid UTF-8 text")
	}
	st := s.deps.State.State()
	k, ec, err := s.cryptoKey(c, st, "kms:Encrypt")
	if err != nil {
		return nil, err
	}
	vid, blob, err := s.seal(c, k, pt, ec)
	if err != nil {
		return nil, err
	}
	c.trailVersion = vid
	c.cipherReply = cipherReply{c.reply(), k.ID, vid, blob}
	return &c.cipherReply, nil
}

// dataKeySize reads NumberOfBytes (1–1024, which wins) or KeySpec
// (AES_256 = 32 bytes, AES_128 = 16; default 32).
func dataKeySize(c *call) (int, error) {
	if _, ok := c.param("NumberOfBytes"); ok {
		n, err := c.integer("NumberOfBytes", 1, maxDataKeyLen, 32)
		return int(n), err
	}
	spec, err := enum(c, "KeySpec", "AES_256", "AES_256", "AES_128")
	if spec == "AES_128" {
		return 16, err
	}
	return 32, err
}

// dataKey makes a data key under KeyId: the plaintext is the base64 text of
// fresh random bytes, and the blob encrypts that text, so Decrypt of the
// blob returns the same Plaintext string.
func (s *Server) dataKey(c *call, action string) (*fsm.Key, string, string, string, error) {
	n, err := dataKeySize(c)
	if err != nil {
		return nil, "", "", "", err
	}
	st := s.deps.State.State()
	k, ec, err := s.cryptoKey(c, st, action)
	if err != nil {
		return nil, "", "", "", err
	}
	c.plain = c.plain[:n]
	crypto.Fill(c.plain)
	c.plainText = base64.StdEncoding.AppendEncode(c.plainText[:0], c.plain)
	vid, blob, err := s.seal(c, k, c.plainText, ec)
	if err != nil {
		return nil, "", "", "", err
	}
	return k, vid, blob, bstr(c.plainText), nil
}

func (s *Server) generateDataKey(c *call) (any, error) {
	k, vid, blob, text, err := s.dataKey(c, "kms:GenerateDataKey")
	if err != nil {
		return nil, err
	}
	c.trailVersion = vid
	c.dataKeyReply = dataKeyReply{c.reply(), k.ID, vid, blob, text}
	return &c.dataKeyReply, nil
}

func (s *Server) generateDataKeyWithoutPlaintext(c *call) (any, error) {
	k, vid, blob, _, err := s.dataKey(c, "kms:GenerateDataKeyWithoutPlaintext")
	if err != nil {
		return nil, err
	}
	c.trailVersion = vid
	c.cipherReply = cipherReply{c.reply(), k.ID, vid, blob}
	return &c.cipherReply, nil
}

func (s *Server) decrypt(c *call) (any, error) {
	st := s.deps.State.State()
	o, err := s.parseBlob(c, st, "CiphertextBlob")
	if err != nil {
		return nil, err
	}
	ec, err := encryptionContext(c, "EncryptionContext")
	if err != nil {
		return nil, err
	}
	dry, err := c.dryRun()
	if err != nil {
		return nil, err
	}
	c.authContext = ec
	if err := s.authorize(c, "kms:Decrypt", o.key); err != nil {
		return nil, err
	}
	if err := usable(o.key); err != nil {
		return nil, err
	}
	if dry {
		return nil, ErrDryRun
	}
	pt, err := s.open(c, o, ec)
	if err != nil {
		return nil, err
	}
	c.trailVersion = o.version.ID
	c.decryptReply = decryptReply{c.reply(), o.key.ID, o.version.ID, bstr(pt)}
	return &c.decryptReply, nil
}

// reEncrypt opens a blob and seals its plaintext under the primary version
// of DestinationKeyId; the plaintext never leaves the node. It needs
// ReEncryptFrom on the source key and ReEncryptTo on the destination.
func (s *Server) reEncrypt(c *call) (any, error) {
	st := s.deps.State.State()
	o, err := s.parseBlob(c, st, "CiphertextBlob")
	if err != nil {
		return nil, err
	}
	srcEC, err := encryptionContext(c, "SourceEncryptionContext")
	if err != nil {
		return nil, err
	}
	dstEC, err := encryptionContext(c, "DestinationEncryptionContext")
	if err != nil {
		return nil, err
	}
	dry, err := c.dryRun()
	if err != nil {
		return nil, err
	}
	ref, err := s.keyRef(c, "DestinationKeyId")
	if err != nil {
		return nil, err
	}
	dst, err := s.resolveKey(c, st, ref, &c.key)
	if err != nil {
		return nil, err
	}
	// The source is named by its blob, not by an alias.
	c.authContext, c.authRef = srcEC, ""
	if err := s.authorize(c, "kms:ReEncryptFrom", o.key); err != nil {
		return nil, err
	}
	c.authContext, c.authRef = dstEC, ref
	if err := s.authorize(c, "kms:ReEncryptTo", dst); err != nil {
		return nil, err
	}
	if err := usable(o.key); err != nil {
		return nil, err
	}
	if err := usable(dst); err != nil {
		return nil, err
	}
	if dry {
		return nil, ErrDryRun
	}
	pt, err := s.open(c, o, srcEC)
	if err != nil {
		return nil, err
	}
	vid, blob, err := s.seal(c, dst, pt, dstEC)
	if err != nil {
		return nil, err
	}
	c.trailVersion = vid
	c.cipherReply = cipherReply{c.reply(), dst.ID, vid, blob}
	return &c.cipherReply, nil
}
