// Package policy decides every request with OPA Rego evaluated in-process.
//
// The decision is the document data.kms.authz.decision, {"allow": bool,
// "reasons": [string]}, over an Input that names the action, the principal,
// the resource and the request context. Modules are compiled once
// (PrepareForEval) and swapped atomically when policies change; decisions
// are cached per (principal, action, resource, policy version) because one
// Rego evaluation costs tens of microseconds, more than the cryptography of
// a GenerateDataKey call.
package policy
