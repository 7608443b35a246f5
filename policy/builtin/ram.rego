# The evaluator of RAM-style JSON policy documents attached to users:
#   {"Version":"1","Statement":[{"Effect":"Allow"|"Deny","Action":…,"Resource":…,"Condition":{…}}]}
# The documents are data: data.raftkms.user_policies[account][user] is a list
# of {"name": policy name, "document": the parsed document}. A matching Deny
# statement denies (and always wins); a matching Allow statement allows.
package kms.ram

policies := data.raftkms.user_policies[input.principal.account][input.principal.name] if input.principal.type == "user"

default policies := []

# The resource a statement's Resource patterns are matched against: the key
# ARN, or for account-level actions acs:kms:<region>:<account>:*.
resource := input.resource.arn if input.resource

resource := sprintf("acs:kms:%s:%s:*", [input.context.region, input.principal.account]) if not input.resource

as_list(x) := x if is_array(x)

as_list(x) := [x] if not is_array(x)

matches(st) if {
	some a in as_list(st.Action)
	glob.match(lower(a), null, lower(input.action))
	some r in as_list(object.get(st, "Resource", "*"))
	glob.match(r, null, resource)
	conditions_hold(st)
}

conditions_hold(st) if not st.Condition

conditions_hold(st) if {
	st.Condition
	every op, keys in st.Condition {
		every k, want in keys {
			condition(op, k, as_list(want))
		}
	}
}

# ---- Condition keys --------------------------------------------------------

value("acs:SourceIp") := input.context.source_ip

value("acs:CurrentTime") := input.context.time

value("acs:SecureTransport") := sprintf("%v", [input.context.secure_transport])

value(k) := object.get(input.resource, ["tags", substring(k, 8, -1)], "") if startswith(k, "kms:tag/")

value(k) := object.get(input.context, ["encryption_context", substring(k, 22, -1)], "") if startswith(k, "kms:EncryptionContext/")

# ---- Operators (a list of wanted values matches if any matches) -------------

condition("StringEquals", k, want) if value(k) in want

condition("StringNotEquals", k, want) if not value(k) in want

condition("StringEqualsIgnoreCase", k, want) if {
	some w in want
	lower(value(k)) == lower(w)
}

condition("StringLike", k, want) if {
	some w in want
	glob.match(w, null, value(k))
}

condition("StringNotLike", k, want) if {
	every w in want {
		not glob.match(w, null, value(k))
	}
}

condition("IpAddress", k, want) if {
	some w in want
	net.cidr_contains(cidr(w), value(k))
}

condition("NotIpAddress", k, want) if {
	every w in want {
		not net.cidr_contains(cidr(w), value(k))
	}
}

condition("DateGreaterThan", k, want) if {
	some w in want
	time.parse_rfc3339_ns(value(k)) > time.parse_rfc3339_ns(w)
}

condition("DateLessThan", k, want) if {
	some w in want
	time.parse_rfc3339_ns(value(k)) < time.parse_rfc3339_ns(w)
}

condition("Bool", k, want) if lower(value(k)) in {lower(w) | some w in want}

cidr(w) := w if contains(w, "/")

cidr(w) := concat("", [w, "/32"]) if {
	not contains(w, "/")
	not contains(w, ":")
}

cidr(w) := concat("", [w, "/128"]) if {
	not contains(w, "/")
	contains(w, ":")
}

# ---- Results ---------------------------------------------------------------

deny contains sprintf("explicitly denied by policy %s", [p.name]) if {
	some p in policies
	some st in p.document.Statement
	st.Effect == "Deny"
	matches(st)
}

allow contains sprintf("allowed by policy %s", [p.name]) if {
	some p in policies
	some st in p.document.Statement
	st.Effect == "Allow"
	matches(st)
}
