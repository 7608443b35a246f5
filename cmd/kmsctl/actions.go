package main

import (
	"strings"
	"unicode"
)

// kind is how a parameter is given on the command line.
type kind int

const (
	text    kind = iota // --key-id VALUE
	integer             // --page-size 10
	boolean             // --dry-run, --enable-deletion-protection=false
	file                // --module-file FILE: the parameter is the file's content
)

type param struct {
	name     string // the API parameter, e.g. KeyId
	kind     kind
	required bool
	help     string
}

// action is one API action; kmsctl makes a subcommand of it named in
// kebab-case (GenerateDataKey → generate-data-key) with a flag per
// parameter (KeyId → --key-id).
type action struct {
	name    string
	version string
	help    string
	params  []param
}

const kmsVersion = "2016-01-20"

var (
	userNameParam   = param{"UserName", text, true, "the user's name"}
	policyNameParam = param{"PolicyName", text, true, "the policy's name"}
	productParam    = param{"ProductCode", text, true, "the cloud product's code, e.g. ecs"}
	keyOwnerParams  = []param{
		{"UserName", text, false, "a user's AccessKeys (default: the account root's)"},
		{"ProductCode", text, false, "a service principal's AccessKeys"},
	}
)

var (
	keyID      = param{"KeyId", text, true, "key id, alias (alias/…) or ARN"}
	ec         = param{"EncryptionContext", text, false, `JSON object of strings bound to the ciphertext, e.g. '{"table":"orders"}'`}
	dryRun     = param{"DryRun", boolean, false, "check the request without performing it"}
	pageNumber = param{"PageNumber", integer, false, "page to return, from 1"}
	pageSize   = param{"PageSize", integer, false, "entries per page, 1–100 (default 10)"}
	aliasName  = param{"AliasName", text, true, "alias name, alias/…"}
	blob       = param{"CiphertextBlob", text, true, "ciphertext returned by Encrypt or GenerateDataKey"}
)

// actions is every action kmsctl can call.
var actions = []action{
	{"CreateKey", kmsVersion, "Create a customer master key", []param{
		{"Description", text, false, "what the key is for"},
		{"KeySpec", text, false, "Aliyun_AES_256 (default) or Aliyun_AES_128"},
		{"KeyUsage", text, false, "ENCRYPT/DECRYPT"},
		{"Origin", text, false, "Aliyun_KMS"},
		{"ProtectionLevel", text, false, "SOFTWARE"},
		{"EnableAutomaticRotation", boolean, false, "rotate the key automatically"},
		{"RotationInterval", text, false, "rotation interval, 7d–730d (e.g. 365d)"},
		{"Tags", text, false, `JSON tags, e.g. '[{"TagKey":"env","TagValue":"prod"}]'`},
		{"DKMSInstanceId", text, false, "KMS instance id"},
	}},
	{"DescribeKey", kmsVersion, "Show a key's metadata", []param{keyID}},
	{"ListKeys", kmsVersion, "List keys", []param{pageNumber, pageSize,
		{"Filters", text, false, `JSON filters, e.g. '[{"Key":"KeyState","Values":["Enabled"]}]'`}}},
	{"UpdateKeyDescription", kmsVersion, "Change a key's description", []param{keyID,
		{"Description", text, true, "the new description"}}},
	{"EnableKey", kmsVersion, "Enable a key", []param{keyID}},
	{"DisableKey", kmsVersion, "Disable a key", []param{keyID}},
	{"ScheduleKeyDeletion", kmsVersion, "Schedule a key's deletion", []param{keyID,
		{"PendingWindowInDays", integer, true, "days before deletion, 7–366"}}},
	{"CancelKeyDeletion", kmsVersion, "Cancel a scheduled deletion", []param{keyID}},
	{"SetDeletionProtection", kmsVersion, "Turn deletion protection on or off", []param{
		{"ProtectedResourceArn", text, false, "ARN of the key (or use --key-id)"},
		{"KeyId", text, false, "key id, alias or ARN"},
		{"EnableDeletionProtection", boolean, true, "true to protect, false to unprotect"},
		{"DeletionProtectionDescription", text, false, "why the key is protected"}}},
	{"CreateAlias", kmsVersion, "Create an alias for a key", []param{aliasName, keyID}},
	{"UpdateAlias", kmsVersion, "Point an alias at another key", []param{aliasName, keyID}},
	{"DeleteAlias", kmsVersion, "Delete an alias", []param{aliasName}},
	{"ListAliases", kmsVersion, "List aliases", []param{pageNumber, pageSize}},
	{"ListAliasesByKeyId", kmsVersion, "List the aliases of a key", []param{keyID, pageNumber, pageSize}},
	{"Encrypt", kmsVersion, "Encrypt text (at most 6 KiB) under a key", []param{keyID,
		{"Plaintext", text, true, "the text to encrypt"}, ec, dryRun}},
	{"Decrypt", kmsVersion, "Decrypt a ciphertext", []param{blob, ec, dryRun}},
	{"GenerateDataKey", kmsVersion, "Make a data key: its plaintext and its ciphertext", []param{keyID,
		{"KeySpec", text, false, "AES_256 (default) or AES_128"},
		{"NumberOfBytes", integer, false, "data key length, 1–1024 (wins over --key-spec)"}, ec, dryRun}},
	{"GenerateDataKeyWithoutPlaintext", kmsVersion, "Make a data key and return only its ciphertext", []param{keyID,
		{"KeySpec", text, false, "AES_256 (default) or AES_128"},
		{"NumberOfBytes", integer, false, "data key length, 1–1024"}, ec, dryRun}},
	{"ReEncrypt", kmsVersion, "Re-encrypt a ciphertext under another key or context", []param{blob,
		{"DestinationKeyId", text, true, "key to encrypt under"},
		{"SourceEncryptionContext", text, false, "context the ciphertext was made with"},
		{"DestinationEncryptionContext", text, false, "context for the new ciphertext"}, dryRun}},
	{"DescribeRegions", kmsVersion, "List regions", nil},
	// raftkms's own identity and policy actions.
	{"CreateAccount", ownVersion, "Create an account (tenant) and its root AccessKey [system root]", []param{
		{"AccountName", text, true, "the account's name"}}},
	{"ListAccounts", ownVersion, "List accounts [system root]", nil},
	{"DeleteAccount", ownVersion, "Delete an account that holds no keys [system root]", []param{
		{"AccountId", text, true, "the account's id"}}},
	{"CreateUser", ownVersion, "Create a user in your account", []param{userNameParam}},
	{"ListUsers", ownVersion, "List your account's users", nil},
	{"DeleteUser", ownVersion, "Delete a user with its AccessKeys and policies", []param{userNameParam}},
	{"CreateServicePrincipal", ownVersion, "Let a cloud product act in your account; prints its AccessKey", []param{productParam}},
	{"ListServicePrincipals", ownVersion, "List your account's service principals", nil},
	{"DeleteServicePrincipal", ownVersion, "Remove a service principal and its AccessKeys", []param{productParam}},
	{"CreateAccessKey", ownVersion, "Create an AccessKey (prints AccessKeyId and AccessKeySecret)", keyOwnerParams},
	{"ListAccessKeys", ownVersion, "List AccessKeys with their status and last use", keyOwnerParams},
	{"UpdateAccessKey", ownVersion, "Enable or disable an AccessKey", []param{
		{"AccessKeyId", text, true, "the AccessKey"}, {"Status", text, true, "Active or Inactive"}}},
	{"DeleteAccessKey", ownVersion, "Delete an AccessKey", []param{{"AccessKeyId", text, true, "the AccessKey"}}},
	{"PutUserPolicy", ownVersion, "Attach (or replace) a RAM-style policy document on a user", []param{userNameParam, policyNameParam,
		{"PolicyDocument", text, true, `the document, e.g. '{"Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}]}'`}}},
	{"GetUserPolicy", ownVersion, "Show a user's policy document", []param{userNameParam, policyNameParam}},
	{"ListUserPolicies", ownVersion, "List a user's policies", []param{userNameParam}},
	{"DeleteUserPolicy", ownVersion, "Detach a policy from a user", []param{userNameParam, policyNameParam}},
	{"PutRegoPolicy", ownVersion, "Publish (or replace) a Rego module in package kms.custom [system root]", []param{policyNameParam,
		{"Module", file, true, "the .rego file"}}},
	{"GetRegoPolicy", ownVersion, "Show a published Rego module [system root]", []param{policyNameParam}},
	{"ListRegoPolicies", ownVersion, "List published Rego modules [system root]", nil},
	{"DeleteRegoPolicy", ownVersion, "Withdraw a Rego module [system root]", []param{policyNameParam}},
	{"EvaluatePolicy", ownVersion, "Decide an input document under the published policies", []param{
		{"Input", text, true, "the input document (JSON); see also kmsctl policy eval"}}},
	{"LookupEvents", ownVersion, "Find trail records, newest first: who used which key, when, from where, with what result", []param{
		{"KeyId", text, false, "records of this key (id, alias or ARN)"},
		{"UserName", text, false, "records of this user's requests"},
		{"EventName", text, false, "records of this action, e.g. Decrypt"},
		{"Outcome", text, false, "success, denied or failed"},
		{"StartTime", text, false, "from this time (RFC 3339, e.g. 2026-11-29T10:00:00Z)"},
		{"EndTime", text, false, "up to this time (RFC 3339)"},
		{"AccountId", text, false, "another account's records [system root]; the system root sees all by default"},
		{"PageSize", integer, false, "records per page, 1–100 (default 20)"},
		{"NextToken", text, false, "the NextToken of the previous page"}}},
	{"GetRandomPassword", kmsVersion, "Generate a random password", []param{
		{"PasswordLength", integer, false, "length, 8–128 (default 32)"},
		{"ExcludeCharacters", text, false, "characters to leave out"},
		{"ExcludeLowercase", boolean, false, "no lower-case letters"},
		{"ExcludeUppercase", boolean, false, "no upper-case letters"},
		{"ExcludeNumbers", boolean, false, "no digits"},
		{"ExcludePunctuation", boolean, false, "no punctuation"},
		{"RequireEachIncludedType", boolean, false, "at least one of each included type (default true)"}}},
}

// kebab turns an API name into a command or flag name:
// GenerateDataKey → generate-data-key, DKMSInstanceId → dkms-instance-id.
func kebab(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || (unicode.IsUpper(r[i-1]) && nextLower) {
				b.WriteByte('-')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
