package api

import (
	"errors"
	"fmt"

	"github.com/raftkms/raftkms/api/replay"
	"github.com/raftkms/raftkms/cluster"
	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
)

// Errors of the API layer itself. Handlers return them (or errors of other
// packages); only the table below turns errors into HTTP statuses and
// Alibaba codes.
var (
	ErrUnknownAction      = errors.New("api: unknown action")
	ErrUnknownVersion     = errors.New("api: unknown API version")
	ErrMethod             = errors.New("api: unsupported HTTP method")
	ErrNotSigned          = errors.New("api: request is not signed")
	ErrIncompleteSig      = errors.New("api: incomplete signature")
	ErrSignatureMismatch  = errors.New("api: signature does not match")
	ErrUnsupportedSig     = errors.New("api: unsupported signature method")
	ErrTimestampFormat    = errors.New("api: malformed timestamp")
	ErrAccessKeyNotFound  = errors.New("api: access key not found")
	ErrAccessKeyInactive  = errors.New("api: access key is disabled")
	ErrContentHash        = errors.New("api: x-acs-content-sha256 does not match the body")
	ErrKeyDisabled        = errors.New("api: key is disabled")
	ErrKeyPendingDeletion = errors.New("api: key is pending deletion")
	ErrKeyPendingImport   = errors.New("api: key is pending import")
	ErrDryRun             = errors.New("api: dry run: the request would have succeeded")
	ErrNotReady           = errors.New("api: node is not ready to serve")
	ErrTooManyParams      = errors.New("api: too many parameters")
	ErrSealBudget         = errors.New("api: waiting for this node's encryption budget to be reserved")
	ErrTooLarge           = errors.New("api: request too large")
	ErrBadSnapshot        = errors.New("api: the snapshot file is damaged or from a cluster with another root key")
	ErrRestore            = errors.New("api: the restore did not complete")
	ErrPolicyUnavailable  = errors.New("api: the cluster's policies cannot be loaded on this node")
)

// ParamError is a missing or invalid request parameter.
type ParamError struct {
	Name    string
	Missing bool
	Reason  string // why it is invalid; shown to the client
}

func (e *ParamError) Error() string {
	if e.Missing {
		return fmt.Sprintf("api: parameter %s is missing", e.Name)
	}
	return fmt.Sprintf("api: parameter %s is invalid: %s", e.Name, e.Reason)
}

func missing(name string) error { return &ParamError{Name: name, Missing: true} }

func invalid(name, format string, args ...any) error {
	return &ParamError{Name: name, Reason: fmt.Sprintf(format, args...)}
}

// DeniedError is a request the policies refused.
type DeniedError struct{ Reasons []string }

func (e *DeniedError) Error() string { return fmt.Sprintf("api: denied: %v", e.Reasons) }

// wireError is what a client sees for an error.
type wireError struct {
	Status    int
	Code      string
	Message   string
	Recommend string
	// Definite is false when the request may have taken effect even though
	// it failed (a write whose commit is uncertain); clients should read
	// before retrying.
	Definite bool
}

// errorTable maps every sentinel error a handler can return to what the
// client sees. Handlers never choose status codes. Entries are checked in
// order with errors.Is.
var errorTable = []struct {
	err error
	we  wireError
}{
	// Request shape and routing.
	{ErrMethod, wireError{403, "UnsupportedHTTPMethod", "Only GET and POST to / are supported.", "Send the request as POST / with the parameters in the query string.", true}},
	{ErrUnknownAction, wireError{404, "InvalidAction.NotFound", "The specified action is not supported.", "Check the Action parameter (or the x-acs-action header).", true}},
	{ErrUnknownVersion, wireError{400, "InvalidVersion", "The specified API version is not supported.", "Use Version 2016-01-20.", true}},
	{ErrTooManyParams, wireError{400, "InvalidParameter", "The request has too many parameters.", "", true}},
	{ErrTooLarge, wireError{413, "RequestEntityTooLarge", "The request is larger than this action accepts.", "Query string and body together are limited (64 KiB by default).", true}},
	{ErrBadSnapshot, wireError{400, "InvalidParameter", "The snapshot file is damaged, incomplete, or was made by a cluster with another root key.", "", true}},
	{cluster.ErrUnknownMember, wireError{404, "InvalidParameter.NodeNotFound", "No node with this id is in the cluster.", "See kmsctl cluster members.", true}},
	{ErrDryRun, wireError{412, "DryRunOperationError", "Request would have succeeded, but DryRun flag is set.", "Call again without DryRun=true to perform the operation.", true}},

	// Authentication.
	{ErrNotSigned, wireError{400, "IncompleteSignature", "The request is not signed.", "Sign the request with AccessKey V1 (HMAC-SHA1) or V3 (ACS3-HMAC-SHA256).", true}},
	{ErrIncompleteSig, wireError{400, "IncompleteSignature", "The request signature does not conform to Alibaba Cloud standards.", "Sign every required parameter and header.", true}},
	{ErrUnsupportedSig, wireError{400, "IncompleteSignature", "The signature method is not supported.", "Use HMAC-SHA1 (V1) or ACS3-HMAC-SHA256 (V3).", true}},
	{ErrSignatureMismatch, wireError{400, "SignatureDoesNotMatch", "The request signature does not match the one computed by the server.", "Check the AccessKey secret and that the request was not modified in transit.", true}},
	{ErrContentHash, wireError{400, "IncompleteSignature", "x-acs-content-sha256 does not match the request body.", "", true}},
	{ErrTimestampFormat, wireError{400, "IllegalTimestamp", "The timestamp is not in the format yyyy-MM-ddTHH:mm:ssZ (UTC).", "", true}},
	{replay.ErrTimestamp, wireError{400, "IllegalTimestamp", "The request timestamp is more than 15 minutes away from the server time.", "Synchronise the client clock (NTP) and sign the request again.", true}},
	{replay.ErrReplay, wireError{400, "SignatureNonceUsed", "The signature nonce has already been used.", "Use a fresh random nonce for every request.", true}},
	{fsm.ErrNonceReused, wireError{400, "SignatureNonceUsed", "The signature nonce has already been used.", "Use a fresh random nonce for every request.", true}},
	{fsm.ErrNonceExpired, wireError{400, "IllegalTimestamp", "The request timestamp left the accepted window before the write committed.", "Sign the request again and retry.", true}},
	{ErrAccessKeyNotFound, wireError{404, "InvalidAccessKeyId.NotFound", "The AccessKey ID provided does not exist in our records.", "", true}},
	{ErrAccessKeyInactive, wireError{403, "InvalidAccessKeyId.Inactive", "The AccessKey ID provided is disabled.", "", true}},

	// Resources.
	{fsm.ErrKeyNotFound, wireError{404, "Forbidden.KeyNotFound", "The specified Key is not found.", "Check the KeyId, alias or ARN, and the account and region.", true}},
	{fsm.ErrAliasNotFound, wireError{404, "Forbidden.AliasNotFound", "The specified Alias is not found.", "", true}},
	{fsm.ErrAliasExists, wireError{400, "AliasAlreadyExists", "The specified Alias already exists.", "Use UpdateAlias to point it at another key.", true}},
	{fsm.ErrAliasLimit, wireError{400, "Rejected.LimitExceeded", "The key already has the maximum number of aliases (50).", "", true}},
	{fsm.ErrVersionLimit, wireError{400, "Rejected.LimitExceeded", "The key already has the maximum number of versions.", "", true}},
	{fsm.ErrSealLimit, wireError{400, "Rejected.LimitExceeded", "The key's primary version reached its encryption limit (2^32 AES-GCM encryptions).", "Rotate the key; the service does so automatically well before the limit.", true}},

	// Identities and policies.
	{fsm.ErrAccountNotFound, wireError{404, "EntityNotExist.Account", "The specified account does not exist.", "", true}},
	{fsm.ErrUserNotFound, wireError{404, "EntityNotExist.User", "The specified user does not exist.", "", true}},
	{fsm.ErrUserExists, wireError{409, "EntityAlreadyExists.User", "The user already exists.", "", true}},
	{fsm.ErrServiceNotFound, wireError{404, "EntityNotExist.ServicePrincipal", "The specified service principal does not exist.", "", true}},
	{fsm.ErrServiceExists, wireError{409, "EntityAlreadyExists.ServicePrincipal", "The service principal already exists.", "", true}},
	{fsm.ErrAccessKeyNotFound, wireError{404, "EntityNotExist.AccessKey", "The specified AccessKey does not exist in this account.", "", true}},
	{fsm.ErrPolicyNotFound, wireError{404, "EntityNotExist.Policy", "The specified policy does not exist.", "", true}},
	{fsm.ErrAccountNotEmpty, wireError{409, "DeleteConflict.Account.Key", "The account still has keys.", "Schedule their deletion and wait until they are destroyed.", true}},
	{fsm.ErrSystemAccount, wireError{409, "DeleteConflict.SystemAccount", "The system account cannot be deleted.", "", true}},
	{fsm.ErrLastRootAccessKey, wireError{409, "DeleteConflict.LastAccessKey", "An account keeps at least one active root AccessKey.", "Create another root AccessKey first.", true}},
	{fsm.ErrAccessKeyLimit, wireError{409, "LimitExceeded.AccessKey", "The principal already has the maximum number of AccessKeys (5).", "", true}},
	{fsm.ErrIdentityLimit, wireError{409, "LimitExceeded.Policy", "The user already has the maximum number of policies (20).", "", true}},
	{fsm.ErrServiceKey, wireError{403, "Forbidden.ServiceKey", "The key is a service key: its lifecycle and its alias belong to its cloud product.", "Service keys can be described and audited, not managed.", true}},

	// Key states.
	{ErrKeyDisabled, wireError{409, "Rejected.Disabled", "The key is disabled.", "Enable the key first.", true}},
	{ErrKeyPendingDeletion, wireError{409, "Rejected.PendingDeletion", "The key is pending deletion.", "Cancel the key deletion first.", true}},
	{ErrKeyPendingImport, wireError{409, "Rejected.PendingImport", "The key is pending import.", "", true}},
	{fsm.ErrPendingDeletion, wireError{409, "Rejected.PendingDeletion", "The key is pending deletion.", "Cancel the key deletion first.", true}},
	{fsm.ErrStateConflict, wireError{409, "Rejected.StateModifiedFailed", "The key's current state does not allow this operation.", "See the key-state matrix in docs/API.md.", true}},
	{fsm.ErrDeletionProtect, wireError{409, "Rejected.DeletionProtection", "The key has deletion protection enabled.", "Disable deletion protection (SetDeletionProtection) first.", true}},

	// Ciphertexts.
	{crypto.ErrMalformedBlob, wireError{400, "InvalidParameter", "The specified parameter \"CiphertextBlob\" is not valid: it is not a ciphertext made by this service.", "", true}},
	{crypto.ErrDecrypt, wireError{400, "InvalidCiphertext", "The ciphertext cannot be decrypted: it was altered, or the EncryptionContext differs from the one used to encrypt.", "Pass the same EncryptionContext as when encrypting.", true}},
	{crypto.ErrPasswordClasses, wireError{400, "InvalidParameter", "The exclusions leave no characters to build the password from.", "", true}},

	// Availability: retryable.
	{ErrNotReady, wireError{503, "ServiceUnavailableTemporary", "The node is not ready to serve; retry.", "Retry with backoff, or call another node.", true}},
	{cluster.ErrNotLeader, wireError{503, "ServiceUnavailableTemporary", "The cluster has no leader right now; retry.", "Retry with backoff.", true}},
	{cluster.ErrShutdown, wireError{503, "ServiceUnavailableTemporary", "The node is shutting down; retry.", "Retry with backoff, or call another node.", true}},
	{cluster.ErrTimeout, wireError{503, "ServiceUnavailableTemporary", "The write did not commit in time; it may still apply.", "Read the resource before retrying.", false}},
	{cluster.ErrUncertain, wireError{503, "ServiceUnavailableTemporary", "Leadership changed during the write; it may or may not have applied.", "Read the resource before retrying.", false}},
	{ErrSealBudget, wireError{503, "ServiceUnavailableTemporary", "The node is reserving more encryptions with this key version; retry.", "Retry with backoff.", true}},
	{ErrTrailUnavailable, wireError{503, "ServiceUnavailableTemporary", "The request's audit record could not be committed, so the request was not served.", "Retry with backoff.", true}},
	{ErrTrailBehind, wireError{503, "ServiceUnavailableTemporary", "Trail records this node wrote have not reached the replicated trail yet, so the answer would miss them.", "Retry with backoff; operators: see the node's log.", true}},
	{ErrPolicyUnavailable, wireError{503, "ServiceUnavailableTemporary", "This node cannot load the cluster's policies; it refuses requests rather than decide them wrongly.", "Call another node; operators: see the node's log.", true}},
	{ErrRestore, wireError{503, "ServiceUnavailableTemporary", "The restore did not complete; the cluster keeps its previous state or the restored one, not a mix.", "Check kmsctl cluster status and retry.", false}},
	{replay.ErrFull, wireError{503, "ServiceUnavailableTemporary", "The node is too busy to track request nonces; retry.", "Retry with backoff.", true}},
}

// internalError is what every unmapped error becomes. Its cause is logged,
// never sent.
var internalError = wireError{500, "InternalFailure", "The request processing has failed due to some unknown error.", "Retry; if it persists, report the RequestId.", false}

// toWire maps an error to what the client sees. ok is false for unmapped
// errors, which the caller logs.
func toWire(err error) (we wireError, ok bool) {
	var pe *ParamError
	if errors.As(err, &pe) {
		if pe.Missing {
			return wireError{400, "MissingParameter", fmt.Sprintf("The parameter %q is needed but not provided.", pe.Name), "", true}, true
		}
		return wireError{400, "InvalidParameter", fmt.Sprintf("The specified parameter %q is not valid: %s.", pe.Name, pe.Reason), "", true}, true
	}
	var de *DeniedError
	if errors.As(err, &de) {
		msg := "This operation is forbidden by permission system."
		for _, r := range de.Reasons {
			msg += " " + r + "."
		}
		return wireError{403, "Forbidden.NoPermission", msg, "Ask the key administrator for a policy that allows this action.", true}, true
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.we, true
		}
	}
	return internalError, false
}
