package api

import (
	"bytes"
	"encoding/json"
	"io"
	"unicode/utf8"

	"github.com/raftkms/raftkms/crypto"
)

// maxContextBytes bounds an EncryptionContext (its JSON text).
const maxContextBytes = 8192

// encryptionContext reads an EncryptionContext-style parameter: a JSON
// object whose values are all strings. Arrays, numbers, nested objects,
// duplicate keys and trailing data are refused; an absent parameter, "" and
// {} are the empty context (no AAD).
func encryptionContext(c *call, name string) (crypto.Context, error) {
	v, ok := c.param(name)
	if !ok || len(bytes.TrimSpace(v)) == 0 {
		return crypto.Context{}, nil
	}
	if len(v) > maxContextBytes {
		return crypto.Context{}, invalid(name, "longer than %d bytes", maxContextBytes)
	}
	if !utf8.Valid(v) {
		return crypto.Context{}, invalid(name, "not valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(v))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return crypto.Context{}, invalid(name, `must be a JSON object of strings, like {"table":"orders"}`)
	}
	var pairs []crypto.Pair
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return crypto.Context{}, invalid(name, "malformed JSON")
		}
		vt, err := d.Token()
		if err != nil {
			return crypto.Context{}, invalid(name, "malformed JSON")
		}
		val, ok := vt.(string)
		if !ok {
			return crypto.Context{}, invalid(name, "the value of %q is not a string", kt)
		}
		pairs = append(pairs, crypto.Pair{Key: kt.(string), Value: val})
	}
	if t, err := d.Token(); err != nil || t != json.Delim('}') {
		return crypto.Context{}, invalid(name, "malformed JSON")
	}
	if _, err := d.Token(); err != io.EOF {
		return crypto.Context{}, invalid(name, "trailing data after the JSON object")
	}
	ctx, err := crypto.NewContext(pairs)
	if err != nil {
		return crypto.Context{}, invalid(name, "a key appears twice")
	}
	return ctx, nil
}
