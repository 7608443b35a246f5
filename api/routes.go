package api

import "sort"

// handler serves one action. It returns the response body (a struct that
// embeds reply, or streamed when it wrote the response itself) or an error
// for the error table.
type handler func(s *Server, c *call) (any, error)

// API versions: Alibaba's KMS actions, and raftkms's own actions (cluster
// administration), served the same way under their own version.
const (
	KMSVersion = "2016-01-20"
	OwnVersion = "raftkms-2026-11-29"
)

// streamedBody marks the routes that take a large request body as a stream
// (every other route refuses a body above MaxRequestBytes).
var streamedBody = map[string]bool{"RestoreClusterSnapshot": true}

// routes maps API version and action to handlers: the whole API surface
// in one table.
var routes = map[string]map[string]handler{
	OwnVersion: {
		// Cluster administration (cluster.go), for the system account's root.
		"DescribeCluster":           (*Server).describeCluster,
		"RemoveClusterNode":         (*Server).removeClusterNode,
		"TransferClusterLeadership": (*Server).transferClusterLeadership,
		"SaveClusterSnapshot":       (*Server).saveClusterSnapshot,
		"RestoreClusterSnapshot":    (*Server).restoreClusterSnapshot,
		// Accounts and Rego modules (identity.go), for the system account's root.
		"CreateAccount":    (*Server).createAccount,
		"ListAccounts":     (*Server).listAccounts,
		"DeleteAccount":    (*Server).deleteAccount,
		"PutRegoPolicy":    (*Server).putRegoPolicy,
		"GetRegoPolicy":    (*Server).getRegoPolicy,
		"ListRegoPolicies": (*Server).listRegoPolicies,
		"DeleteRegoPolicy": (*Server).deleteRegoPolicy,
		// An account's principals and user policies (identity.go).
		"CreateUser":             (*Server).createUser,
		"ListUsers":              (*Server).listUsers,
		"DeleteUser":             (*Server).deleteUser,
		"CreateServicePrincipal": (*Server).createServicePrincipal,
		"ListServicePrincipals":  (*Server).listServicePrincipals,
		"DeleteServicePrincipal": (*Server).deleteServicePrincipal,
		"CreateAccessKey":        (*Server).createAccessKey,
		"ListAccessKeys":         (*Server).listAccessKeys,
		"UpdateAccessKey":        (*Server).updateAccessKey,
		"DeleteAccessKey":        (*Server).deleteAccessKey,
		"PutUserPolicy":          (*Server).putUserPolicy,
		"GetUserPolicy":          (*Server).getUserPolicy,
		"ListUserPolicies":       (*Server).listUserPolicies,
		"DeleteUserPolicy":       (*Server).deleteUserPolicy,
		"EvaluatePolicy":         (*Server).evaluatePolicy,
		// The audit trail (trail_actions.go).
		"LookupEvents": (*Server).lookupEvents,
		"ExportTrail":  (*Server).exportTrail,
	},
	KMSVersion: {
		// Key lifecycle (keys.go).
		"CreateKey":             (*Server).createKey,
		"DescribeKey":           (*Server).describeKey,
		"ListKeys":              (*Server).listKeys,
		"UpdateKeyDescription":  (*Server).updateKeyDescription,
		"EnableKey":             (*Server).enableKey,
		"DisableKey":            (*Server).disableKey,
		"ScheduleKeyDeletion":   (*Server).scheduleKeyDeletion,
		"CancelKeyDeletion":     (*Server).cancelKeyDeletion,
		"SetDeletionProtection": (*Server).setDeletionProtection,
		// Aliases (aliases.go).
		"CreateAlias":        (*Server).createAlias,
		"UpdateAlias":        (*Server).updateAlias,
		"DeleteAlias":        (*Server).deleteAlias,
		"ListAliases":        (*Server).listAliases,
		"ListAliasesByKeyId": (*Server).listAliasesByKeyID,
		// Cryptography, the fast path (crypto.go).
		"Encrypt":                         (*Server).encrypt,
		"Decrypt":                         (*Server).decrypt,
		"GenerateDataKey":                 (*Server).generateDataKey,
		"GenerateDataKeyWithoutPlaintext": (*Server).generateDataKeyWithoutPlaintext,
		"ReEncrypt":                       (*Server).reEncrypt,
		// Miscellaneous (misc.go).
		"DescribeRegions":   (*Server).describeRegions,
		"GetRandomPassword": (*Server).getRandomPassword,
	},
}

func lookupRoute(version, action string) (handler, error) {
	actions, ok := routes[version]
	if !ok {
		return nil, ErrUnknownVersion
	}
	h, ok := actions[action]
	if !ok {
		return nil, ErrUnknownAction
	}
	return h, nil
}

// Actions returns the actions served under an API version, sorted.
func Actions(version string) []string {
	out := make([]string, 0, len(routes[version]))
	for a := range routes[version] {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}
