package crypto

import (
	"sync"
)

// Keyring caches the unwrapped software key versions a node has used, so
// the fast path pays for unwrapping (and AES key expansion) once per version
// and process, not once per request. Lookups take a read lock only.
type Keyring struct {
	w  Wrapper
	mu sync.RWMutex
	m  map[string]KeyBackend
}

// NewKeyring returns an empty Keyring that unwraps material with w.
func NewKeyring(w Wrapper) *Keyring {
	return &Keyring{w: w, m: make(map[string]KeyBackend)}
}

// Software returns the backend of a software key version, unwrapping wrapped
// (PurposeKeyMaterial, bound to versionID) on first use.
func (k *Keyring) Software(versionID string, wrapped []byte) (KeyBackend, error) {
	k.mu.RLock()
	b, ok := k.m[versionID]
	k.mu.RUnlock()
	if ok {
		return b, nil
	}
	material, err := k.w.Unwrap(PurposeKeyMaterial, versionID, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(material)
	sk, err := NewSoftwareKey(material)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if b, ok := k.m[versionID]; ok {
		return b, nil
	}
	k.m[versionID] = sk
	return sk, nil
}

// Forget drops cached versions, for example when their key material is
// destroyed, so this process no longer holds them.
func (k *Keyring) Forget(versionIDs ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range versionIDs {
		delete(k.m, id)
	}
}

// Len returns the number of cached versions.
func (k *Keyring) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.m)
}
