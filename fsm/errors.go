package fsm

import (
	"errors"
	"fmt"
)

// Errors Apply returns. They are results of deterministic checks, so every
// node returns the same error for the same entry.
var (
	ErrKeyNotFound     = errors.New("fsm: key not found")
	ErrAliasNotFound   = errors.New("fsm: alias not found")
	ErrAliasExists     = errors.New("fsm: alias already exists")
	ErrAccountNotFound = errors.New("fsm: account not found")
	ErrAccountExists   = errors.New("fsm: account already exists")
	ErrAccessKeyExists = errors.New("fsm: access key already exists")
	ErrKeyExists       = errors.New("fsm: key id already exists")
	ErrVersionExists   = errors.New("fsm: key version id already exists")
	ErrStateConflict   = errors.New("fsm: the key's state does not allow this change")
	ErrPendingDeletion = errors.New("fsm: the key is pending deletion")
	ErrDeletionProtect = errors.New("fsm: the key has deletion protection enabled")
	ErrAliasLimit      = errors.New("fsm: the key has too many aliases")
	ErrVersionLimit    = errors.New("fsm: the key has too many versions")
	ErrNotDue          = errors.New("fsm: the scheduled change is not due")
	ErrNonceReused     = errors.New("fsm: signature nonce already used")
	ErrNonceExpired    = errors.New("fsm: signature timestamp left the replay window before the write committed")
	ErrInvalidCommand  = errors.New("fsm: invalid command")
	ErrSealLimit       = errors.New("fsm: the key version reached its encryption limit")
	ErrNotPrimary      = errors.New("fsm: the key version is no longer primary")

	ErrUserNotFound      = errors.New("fsm: user not found")
	ErrUserExists        = errors.New("fsm: user already exists")
	ErrServiceNotFound   = errors.New("fsm: service principal not found")
	ErrServiceExists     = errors.New("fsm: service principal already exists")
	ErrAccessKeyNotFound = errors.New("fsm: access key not found")
	ErrPolicyNotFound    = errors.New("fsm: policy not found")
	ErrAccountNotEmpty   = errors.New("fsm: the account still has keys")
	ErrSystemAccount     = errors.New("fsm: the system account cannot be deleted")
	ErrServiceKey        = errors.New("fsm: the key is a service key; its lifecycle belongs to its product")
	ErrAccessKeyLimit    = errors.New("fsm: the principal has too many AccessKeys")
	ErrLastRootAccessKey = errors.New("fsm: an account keeps at least one active root AccessKey")
	ErrIdentityLimit     = errors.New("fsm: too many policies")
	errUnknownErrorCode  = errors.New("fsm: unknown error code")
)

// errorCodes fixes a number for each error so results can be stored (the
// request-id window) and sent between nodes. Append only: the position is
// the code.
var errorCodes = []error{
	nil,
	ErrKeyNotFound,
	ErrAliasNotFound,
	ErrAliasExists,
	ErrAccountNotFound,
	ErrAccountExists,
	ErrAccessKeyExists,
	ErrKeyExists,
	ErrVersionExists,
	ErrStateConflict,
	ErrPendingDeletion,
	ErrDeletionProtect,
	ErrAliasLimit,
	ErrVersionLimit,
	ErrNotDue,
	ErrNonceReused,
	ErrNonceExpired,
	ErrInvalidCommand,
	ErrSealLimit,
	ErrNotPrimary,
	ErrUserNotFound,
	ErrUserExists,
	ErrServiceNotFound,
	ErrServiceExists,
	ErrAccessKeyNotFound,
	ErrPolicyNotFound,
	ErrAccountNotEmpty,
	ErrSystemAccount,
	ErrServiceKey,
	ErrAccessKeyLimit,
	ErrLastRootAccessKey,
	ErrIdentityLimit,
}

// ErrorCode returns the stable code of an Apply error (0 for nil).
func ErrorCode(err error) uint16 {
	for i, e := range errorCodes {
		if e != nil && errors.Is(err, e) {
			return uint16(i)
		}
	}
	if err == nil {
		return 0
	}
	return uint16(len(errorCodes)) // unknown; CodeError maps it to errUnknownErrorCode
}

// CodeError returns the error for a code from ErrorCode.
func CodeError(code uint16) error {
	if int(code) < len(errorCodes) {
		return errorCodes[code]
	}
	return fmt.Errorf("%w %d", errUnknownErrorCode, code)
}
