package tests.encryption_context

key := {"account": "111", "arn": "acs:kms:cn-hangzhou:111:key/key-c", "class": "customer", "creator": "111", "tags": {"context": "required"}}

test_with_a_tenant if {
	d := data.kms.authz.decision with input as {"action": "kms:GenerateDataKey", "principal": {"account": "111", "type": "root"},
		"resource": key, "context": {"encryption_context": {"tenant": "acme"}}}
	d.allow
}

test_without_a_tenant if {
	d := data.kms.authz.decision with input as {"action": "kms:GenerateDataKey", "principal": {"account": "111", "type": "root"},
		"resource": key, "context": {"encryption_context": {"table": "orders"}}}
	not d.allow
}
