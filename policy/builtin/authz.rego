# Built-in authorization of raftkms. Every request is decided by
# data.kms.authz.decision over the input documented in docs/POLICY.md.
#
# A request is allowed when nothing denies it and something allows it:
#   deny  = built-in denials ∪ explicit Deny statements of the user's policy
#           documents (data.kms.ram) ∪ every `deny` set under data.kms.custom
#   allow = built-in grants ∪ Allow statements of the user's policy documents
#           ∪ every `allow` set under data.kms.custom
# Deny always wins.
package kms.authz

import data.kms.ram

# ---- Account isolation -----------------------------------------------------

# Actions without a resource act on the caller's own account by construction.
same_account if not input.resource

same_account if input.resource.account == input.principal.account

deny contains "the resource belongs to another account" if not same_account

# ---- Cluster administration ------------------------------------------------

cluster_action if startswith(input.action, "cluster:")

deny contains "cluster administration is reserved to the system account's root" if {
	cluster_action
	not system_root
}

system_root if {
	input.principal.type == "root"
	input.principal.system
}

# ---- Service keys ----------------------------------------------------------

service_key if input.resource.class == "service"

# A service principal uses only its own product's service key...
deny contains sprintf("the service key of %s is reserved to its product", [input.resource.creator]) if {
	service_key
	input.principal.type == "service"
	input.principal.product_code != input.resource.creator
}

deny contains "a service principal uses only its product's service key" if {
	input.principal.type == "service"
	input.resource
	not service_key
	not custom_grant
}

# ... and no one else encrypts or decrypts with it: the account's root and
# users may see it, not use it.
service_use_actions := {
	"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
	"kms:ReEncryptFrom", "kms:ReEncryptTo",
}

deny contains sprintf("only %s uses its service key for %s", [input.resource.creator, input.action]) if {
	service_key
	input.principal.type != "service"
	service_use_actions[input.action]
}

# ---- Grants ----------------------------------------------------------------

# The root principal of an account may do everything inside the account;
# the system account's root also administers the cluster.
builtin_allow if {
	input.principal.type == "root"
	not cluster_action
}

builtin_allow if {
	cluster_action
	system_root
}

# A service principal may use and describe its product's service key.
builtin_allow if {
	input.principal.type == "service"
	service_key
	input.resource.creator == input.principal.product_code
	service_actions[input.action]
}

service_actions := service_use_actions | {"kms:DescribeKey"}

# ---- Policy authors' modules (package kms.custom and below) ----------------

custom_deny contains msg if {
	walk(data.kms.custom, [path, rules])
	path[count(path) - 1] == "deny"
	some msg in rules
}

custom_allow contains msg if {
	walk(data.kms.custom, [path, rules])
	path[count(path) - 1] == "allow"
	some msg in rules
}

custom_grant if count(custom_allow) > 0

# ---- The decision ----------------------------------------------------------

all_deny := (deny | ram.deny) | custom_deny

allowed if {
	count(all_deny) == 0
	grants
}

grants if builtin_allow

grants if count(ram.allow) > 0

grants if custom_grant

reasons := all_deny if count(all_deny) > 0

reasons := {sprintf("no policy allows %s for this %s principal", [input.action, input.principal.type])} if {
	count(all_deny) == 0
	not grants
}

default reasons := set()

default allowed := false

decision := {"allow": allowed, "reasons": reasons}
