package client

import (
	"context"
	"encoding/json"
	"strconv"
)

// KeyMetadata is the metadata of a key, as CreateKey and DescribeKey return it.
type KeyMetadata struct {
	KeyID              string `json:"KeyId"`
	Arn                string `json:"Arn"`
	Description        string `json:"Description"`
	KeyState           string `json:"KeyState"`
	KeySpec            string `json:"KeySpec"`
	CreationDate       string `json:"CreationDate"`
	PrimaryKeyVersion  string `json:"PrimaryKeyVersion"`
	DeleteDate         string `json:"DeleteDate"`
	DeletionProtection string `json:"DeletionProtection"`
}

// CreateKey creates a default symmetric key (Aliyun_AES_256) with a description.
func (c *Client) CreateKey(ctx context.Context, description string) (*KeyMetadata, error) {
	var out struct{ KeyMetadata KeyMetadata }
	if err := c.Do(ctx, "CreateKey", map[string]string{"Description": description}, &out); err != nil {
		return nil, err
	}
	return &out.KeyMetadata, nil
}

// DescribeKey returns the metadata of a key (id, alias/… or ARN).
func (c *Client) DescribeKey(ctx context.Context, keyID string) (*KeyMetadata, error) {
	var out struct{ KeyMetadata KeyMetadata }
	if err := c.Do(ctx, "DescribeKey", map[string]string{"KeyId": keyID}, &out); err != nil {
		return nil, err
	}
	return &out.KeyMetadata, nil
}

// DataKey is a GenerateDataKey result: encrypt with Plaintext (base64 of
// the key bytes), store CiphertextBlob, forget Plaintext.
type DataKey struct {
	KeyID          string `json:"KeyId"`
	KeyVersionID   string `json:"KeyVersionId"`
	Plaintext      string `json:"Plaintext"`
	CiphertextBlob string `json:"CiphertextBlob"`
}

// Ciphertext is an Encrypt or ReEncrypt result.
type Ciphertext struct {
	KeyID          string `json:"KeyId"`
	KeyVersionID   string `json:"KeyVersionId"`
	CiphertextBlob string `json:"CiphertextBlob"`
}

// Plaintext is a Decrypt result.
type Plaintext struct {
	KeyID        string `json:"KeyId"`
	KeyVersionID string `json:"KeyVersionId"`
	Plaintext    string `json:"Plaintext"`
}

// withContext adds an EncryptionContext parameter when ec is not empty.
func withContext(p map[string]string, name string, ec map[string]string) (map[string]string, error) {
	if len(ec) == 0 {
		return p, nil
	}
	b, err := json.Marshal(ec)
	if err != nil {
		return nil, err
	}
	p[name] = string(b)
	return p, nil
}

// GenerateDataKey makes a data key of numberOfBytes bytes (0 means 32)
// under keyID, bound to the encryption context ec.
func (c *Client) GenerateDataKey(ctx context.Context, keyID string, numberOfBytes int, ec map[string]string) (*DataKey, error) {
	p := map[string]string{"KeyId": keyID}
	if numberOfBytes > 0 {
		p["NumberOfBytes"] = strconv.Itoa(numberOfBytes)
	}
	p, err := withContext(p, "EncryptionContext", ec)
	if err != nil {
		return nil, err
	}
	var out DataKey
	return &out, c.Do(ctx, "GenerateDataKey", p, &out)
}

// Encrypt encrypts plaintext (text, at most 6 KiB) under keyID.
func (c *Client) Encrypt(ctx context.Context, keyID, plaintext string, ec map[string]string) (*Ciphertext, error) {
	p, err := withContext(map[string]string{"KeyId": keyID, "Plaintext": plaintext}, "EncryptionContext", ec)
	if err != nil {
		return nil, err
	}
	var out Ciphertext
	return &out, c.Do(ctx, "Encrypt", p, &out)
}

// Decrypt decrypts a CiphertextBlob made by Encrypt or GenerateDataKey,
// given the same encryption context.
func (c *Client) Decrypt(ctx context.Context, blob string, ec map[string]string) (*Plaintext, error) {
	p, err := withContext(map[string]string{"CiphertextBlob": blob}, "EncryptionContext", ec)
	if err != nil {
		return nil, err
	}
	var out Plaintext
	return &out, c.Do(ctx, "Decrypt", p, &out)
}
