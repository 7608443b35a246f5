# Built-in authorization rules of raftkms. Every request is decided by
# data.kms.authz.decision over the input documented in docs/POLICY.md.
package kms.authz

# Account isolation: a principal acts only on resources of its own account.
# Actions without a resource (CreateKey, ListKeys, ...) act on the caller's
# own account by construction.
same_account if not input.resource

same_account if input.resource.account == input.principal.account

# The root principal of an account may do everything inside that account.
allow if {
	input.principal.type == "root"
	not cluster_action
	same_account
}

# Cluster administration (members, snapshots) belongs to the root principal
# of the system account, the cluster's first account.
cluster_action if startswith(input.action, "cluster:")

allow if {
	cluster_action
	input.principal.type == "root"
	input.principal.system
}

reasons contains "cluster administration is reserved to the system account's root" if {
	cluster_action
	not input.principal.system
}

reasons contains "the resource belongs to another account" if not same_account

reasons contains sprintf("no policy allows %s for a %s principal", [input.action, input.principal.type]) if not allow

decision := {"allow": allow, "reasons": reasons}

default allow := false
