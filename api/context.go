package api

import (
	"bytes"
	"errors"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/raftkms/raftkms/crypto"
)

// maxContextBytes bounds an EncryptionContext (its JSON text).
const maxContextBytes = 8192

// encryptionContext reads an EncryptionContext-style parameter: a JSON
// object whose values are all strings. Arrays, numbers, nested objects,
// null, duplicate keys and trailing data are refused; an absent parameter,
// "" and {} are the empty context (no AAD). The strings of the result may
// view the request: it is valid only for the call.
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
	// Append: a call may hold two contexts (ReEncrypt).
	start := len(c.pairs)
	pairs, err := parseStringObject(v, c.pairs)
	if err != nil {
		return crypto.Context{}, invalid(name, `must be a JSON object of strings, like {"table":"orders"}: %v`, err)
	}
	c.pairs = pairs
	ctx, err := crypto.NewContext(pairs[start:len(pairs):len(pairs)])
	if err != nil {
		return crypto.Context{}, invalid(name, "a key appears twice")
	}
	return ctx, nil
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

var (
	errNotObject   = errors.New("not a JSON object")
	errNotString   = errors.New("a value is not a string")
	errMalformed   = errors.New("malformed JSON")
	errTrailing    = errors.New("trailing data after the object")
	errBadEscape   = errors.New("invalid escape in a string")
	errControlChar = errors.New("control character in a string")
)

// parseStringObject parses a JSON object of string values (RFC 8259) into
// pairs, appending to dst. Strings without escapes view b; b must be valid
// UTF-8. It is the fast path's replacement for encoding/json, which costs
// two dozen allocations for a small context; a fuzz test holds the two to
// the same answers.
func parseStringObject(b []byte, dst []crypto.Pair) ([]crypto.Pair, error) {
	p := jsonParser{b: b}
	p.space()
	if !p.eat('{') {
		return nil, errNotObject
	}
	p.space()
	if p.eat('}') {
		return p.end(dst)
	}
	for {
		p.space()
		if p.peek() != '"' {
			return nil, errMalformed
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat(':') {
			return nil, errMalformed
		}
		p.space()
		if p.peek() != '"' {
			return nil, errNotString
		}
		v, err := p.str()
		if err != nil {
			return nil, err
		}
		dst = append(dst, crypto.Pair{Key: k, Value: v})
		p.space()
		if p.eat('}') {
			return p.end(dst)
		}
		if !p.eat(',') {
			return nil, errMalformed
		}
	}
}

type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) space() {
	for p.i < len(p.b) && isJSONSpace(p.b[p.i]) {
		p.i++
	}
}

func (p *jsonParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *jsonParser) eat(c byte) bool {
	if p.peek() == c && p.i < len(p.b) {
		p.i++
		return true
	}
	return false
}

func (p *jsonParser) end(dst []crypto.Pair) ([]crypto.Pair, error) {
	p.space()
	if p.i != len(p.b) {
		return nil, errTrailing
	}
	return dst, nil
}

// str reads a string starting at the opening quote.
func (p *jsonParser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := bstr(p.b[start:p.i])
			p.i++
			return s, nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", errControlChar
		}
		p.i++
	}
	return "", errMalformed
}

// escaped finishes a string that holds escapes, decoding it into a new one.
func (p *jsonParser) escaped(start int) (string, error) {
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", errControlChar
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return "", errBadEscape
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", errBadEscape
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by \uDC00–\uDFFF is one rune;
				// anything else is U+FFFD, as encoding/json decodes it.
				save := p.i
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					if r2, ok := p.hex4(); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							out = utf8.AppendRune(out, d)
							continue
						}
					}
					p.i = save
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errBadEscape
		}
	}
	return "", errMalformed
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	p.i += 4
	return r, true
}
