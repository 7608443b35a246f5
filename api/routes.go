package api

import "sort"

// handler serves one action. It returns the response body (a struct that
// embeds reply) or an error for the error table.
type handler func(s *Server, c *call) (any, error)

// KMSVersion is the API version of the Alibaba Cloud KMS actions.
const KMSVersion = "2016-01-20"

// routes maps API version and action to handlers: the whole API surface
// in one table.
var routes = map[string]map[string]handler{
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
